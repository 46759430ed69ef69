import picomatch from 'picomatch';
import type { AccessSettings } from '../config/schema.js';
import { ConfluxError, type ErrorKind } from '../errors.js';
import { identityKey } from './identity-key.js';
import type { Principal } from './principal.js';

export type AccessLevel = 'none' | 'read' | 'call';

/** A principal's or group's level on one server (or `*`). */
export interface Grant {
  id: string;
  source: 'config' | 'database';
  subjectType: 'user' | 'group';
  subject: string;
  server: string;
  level: 'read' | 'call';
}

/** Narrows the tools of a server (or `*`) for a user, a group or everyone (`subject` null). */
export interface ToolRule {
  id: string;
  source: 'config' | 'database';
  subjectType: 'user' | 'group' | 'everyone';
  subject: string | null;
  server: string;
  effect: 'allow' | 'deny';
  /** Glob on the upstream's own tool name. */
  pattern: string;
}

export interface AccessRules {
  grants: readonly Grant[];
  toolRules: readonly ToolRule[];
}

/** What a caller may do with a server's tools, prompts and resources. */
export interface Access {
  readonly principal: Principal;
  /** Sees and may do everything, including the admin API. */
  readonly admin: boolean;
  /** True when no rule narrows anything: lists need no filtering. */
  readonly unrestricted: boolean;
  /** The same for every principal with the same rights; views are cached under it. */
  readonly key: string;
  /** The level on a server, or on one of its tools (by its upstream name). */
  level(server: string, tool?: string): AccessLevel;
  /** At least `read`: listed and readable. */
  visible(server: string, tool?: string): boolean;
}

/** A request outside the caller's rights. */
export class AccessDeniedError extends ConfluxError {
  readonly kind: ErrorKind = 'denied';

  constructor(message: string) {
    super(message);
    this.name = 'AccessDeniedError';
  }
}

const RANK: Record<AccessLevel, number> = { none: 0, read: 1, call: 2 };

export function atLeast(level: AccessLevel, wanted: AccessLevel): boolean {
  return RANK[level] >= RANK[wanted];
}

/** Everything allowed: authentication off, or an admin. */
export function fullAccess(principal: Principal): Access {
  return { principal, admin: true, unrestricted: true, key: '*', level: () => 'call', visible: () => true };
}

/**
 * Evaluates the rules for one principal. Grants raise a server's level (the highest one
 * wins); tool rules then narrow it: a matching deny hides a tool, and where allow rules apply
 * to a server only the tools they match remain.
 */
export function accessFor(principal: Principal, rules: AccessRules, settings: Pick<AccessSettings, 'adminGroup' | 'defaultLevel'>): Access {
  // Names are compared as exact keys (NFC; ASCII-lower-cased emails): see identityKey.
  const groups = new Set(principal.groups.map((g) => identityKey(g, 'group')));
  const roles = principal.roles.map((r) => identityKey(r, 'group'));
  const adminGroup = identityKey(settings.adminGroup, 'group');
  const admin = principal.admin === true || groups.has(adminGroup) || roles.includes(adminGroup);
  if (admin) return fullAccess(principal);
  const names = new Set([principal.id, principal.subject, principal.email].filter((s): s is string => s !== undefined).map((s) => identityKey(s, 'user')));
  const applies = (type: string, subject: string | null) =>
    type === 'everyone' ||
    (type === 'group' && subject !== null && groups.has(identityKey(subject, 'group'))) ||
    (type === 'user' && subject !== null && names.has(identityKey(subject, 'user')));
  const grants = rules.grants.filter((g) => applies(g.subjectType, g.subject));
  const toolRules = rules.toolRules.filter((r) => applies(r.subjectType, r.subject)).map((r) => ({ ...r, matches: picomatch(r.pattern) }));
  const servers = new Map<string, AccessLevel>();
  const serverLevel = (server: string): AccessLevel => {
    let level = servers.get(server);
    if (level === undefined) {
      level = settings.defaultLevel;
      for (const g of grants) if ((g.server === '*' || g.server === server) && RANK[g.level] > RANK[level]) level = g.level;
      servers.set(server, level);
    }
    return level;
  };
  const key = JSON.stringify([grants.map((g) => g.id).sort(), toolRules.map((r) => r.id).sort()]);
  const level = (server: string, tool?: string): AccessLevel => {
    const onServer = serverLevel(server);
    if (tool === undefined || onServer === 'none') return onServer;
    const relevant = toolRules.filter((r) => r.server === '*' || r.server === server);
    if (relevant.some((r) => r.effect === 'deny' && r.matches(tool))) return 'none';
    const allows = relevant.filter((r) => r.effect === 'allow');
    if (allows.length > 0 && !allows.some((r) => r.matches(tool))) return 'none';
    return onServer;
  };
  return { principal, admin: false, unrestricted: false, key, level, visible: (server, tool) => level(server, tool) !== 'none' };
}

/** Config rules in the stored form (one row per server or pattern). */
export function rulesFromSettings(settings: Pick<AccessSettings, 'grants' | 'toolRules'>): AccessRules {
  const grants: Grant[] = settings.grants.flatMap((g, i) =>
    g.servers.map((server, j) => ({
      id: `config:grant:${i}:${j}`,
      source: 'config' as const,
      subjectType: g.user !== undefined ? ('user' as const) : ('group' as const),
      subject: (g.user ?? g.group)!,
      server,
      level: g.level,
    })),
  );
  const toolRules: ToolRule[] = settings.toolRules.flatMap((r, i) => {
    const subjectType = r.user !== undefined ? ('user' as const) : r.group !== undefined ? ('group' as const) : ('everyone' as const);
    const subject = r.user ?? r.group ?? null;
    const rows = (effect: 'allow' | 'deny', patterns: readonly string[] = []) =>
      patterns.map((pattern, j) => ({ id: `config:tool:${i}:${effect}:${j}`, source: 'config' as const, subjectType, subject, server: r.server, effect, pattern }));
    return [...rows('allow', r.allow), ...rows('deny', r.deny)];
  });
  return { grants, toolRules };
}
