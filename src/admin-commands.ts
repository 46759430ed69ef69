import { join } from 'node:path';
import { pino } from 'pino';
import { GatewayAdminError, gatewayAdmin, gatewayConnections } from './admin-api-client.js';
import { directAdmin, type AdminBackend } from './admin-backend.js';
import { AccessControl, AccessRuleError } from './auth/access-control.js';
import { ApiKeyError, ApiKeys } from './auth/api-keys.js';
import { identityKey } from './auth/identity-key.js';
import type { Environment } from './config/env.js';
import type { AccessSettings } from './config/schema.js';
import { AccessRepository } from './store/access-repository.js';
import { ApiKeyRepository } from './store/api-key-repository.js';
import { DataDirLockedError, type LockHolder } from './store/data-dir-lock.js';
import { openDatabase } from './store/database.js';
import { ServerRepository } from './store/server-repository.js';
import { UpstreamTokenRepository } from './store/upstream-token-repository.js';
import { connectionOf, type UserConnection } from './upstream/auth/user-token-store.js';

export interface AdminOptions {
  group?: string[] | undefined;
  subject?: string | undefined;
  expires?: string | undefined;
  user?: string | undefined;
  server?: string | undefined;
  level?: string | undefined;
  allow?: string | undefined;
  deny?: string | undefined;
  json?: boolean | undefined;
  /** An admin's API key or bearer token, for a gateway that holds the embedded database. */
  adminToken?: string | undefined;
}

/** The environment variable holding an admin credential for a gateway's admin API. */
export const ADMIN_TOKEN_VARIABLE = 'CONFLUX_ADMIN_TOKEN';
/** How long to wait for a folder held by a process that serves no admin API (a starting gateway, another command). */
const LOCK_WAIT_MS = 10_000;
const LOCK_POLL_MS = 250;

type Out = (line: string) => void;

/** What `conflux connections` reads and changes: users' stored upstream connections. */
export interface ConnectionsBackend {
  /** One user's connections, or everyone's. */
  list(user?: string): Promise<UserConnection[]>;
  /** False when there was no such connection. Without `user`: the caller's own (through a gateway only). */
  revoke(server: string, user?: string): Promise<boolean>;
}

interface OpenedAdmin {
  backend: AdminBackend;
  connections: ConnectionsBackend;
  /** Servers registered in the database (through the API), when the database is opened here. */
  registeredServers?: (() => Promise<string[]>) | undefined;
  /** The gateway the commands go through, when it holds the embedded database. */
  gateway?: { holder: LockHolder & { url: string }; dataDir: string; token: string | undefined } | undefined;
  close(): Promise<void>;
}

/** What the config file says that the admin commands check against. */
export interface AdminConfig {
  access: AccessSettings;
  /** The config file's server names: a grant naming none of these (nor a registered one) is warned about. */
  servers: readonly string[];
}

/**
 * `keys`, `access` and `connections`: the admin API's key, rule and user connection management. Run against the database
 * directly (PostgreSQL, or an embedded folder no one holds), or through the running gateway
 * that holds the embedded folder: two processes on one PGlite folder would undo each other's
 * writes.
 */
export async function adminCommand(
  command: 'keys' | 'access' | 'connections',
  rest: string[],
  options: AdminOptions,
  env: Environment,
  config: AdminConfig,
  out: Out,
  err: Out,
): Promise<number> {
  const token = options.adminToken ?? (env.variables[ADMIN_TOKEN_VARIABLE] || undefined);
  const opened = await openAdmin(env, config.access, token, err);
  if (!opened) return 1;
  try {
    if (opened.gateway) err(`(through the gateway at ${opened.gateway.holder.url}, process ${opened.gateway.holder.pid}, which holds ${opened.gateway.dataDir})`);
    if (command === 'connections') return await connectionsCommand(opened.connections, opened.gateway !== undefined, rest, options, out, err);
    if (command === 'keys') return await keysCommand(opened.backend, rest, options, out, err);
    const warnUnknown = (server: string | undefined) => warnOfUnknownServer(server, config.servers, opened.registeredServers, err);
    return await accessCommand(opened.backend, rest, options, out, err, warnUnknown);
  } catch (error) {
    if (!(error instanceof GatewayAdminError || error instanceof ApiKeyError || error instanceof AccessRuleError)) throw error;
    err(`${command} ${rest[0] ?? ''}: ${explain(error, opened.gateway)}`);
    return 1;
  } finally {
    await opened.close();
  }
}

async function openAdmin(env: Environment, access: AccessSettings, token: string | undefined, err: Out): Promise<OpenedAdmin | undefined> {
  const dataDir = join(env.dataDir, 'pgdata');
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      return await openDirect(env.databaseUrl, dataDir, access, err);
    } catch (error) {
      if (!(error instanceof DataDirLockedError)) throw error;
      const { holder } = error;
      if (holder.url !== undefined) {
        return { backend: gatewayAdmin(holder.url, token), connections: gatewayConnections(holder.url, token), gateway: { holder: { ...holder, url: holder.url }, dataDir: error.dataDir, token }, close: async () => {} };
      }
      if (Date.now() >= deadline) {
        err(error.message);
        return undefined;
      }
      await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
    }
  }
}

async function openDirect(url: string | undefined, dataDir: string, access: AccessSettings, err: Out): Promise<OpenedAdmin> {
  const database = await openDatabase({ url, dataDir, progress: err });
  try {
    await database.migrate();
    const control = new AccessControl(access, new AccessRepository(database.db), pino({ enabled: false }));
    await control.start();
    const tokens = new UpstreamTokenRepository(database.db);
    return {
      backend: directAdmin(new ApiKeys(new ApiKeyRepository(database.db)), control),
      connections: {
        // Stored under the principal's id, in its compared form (see identity-key.ts).
        list: async (user) => (await tokens.tokens(user === undefined ? undefined : identityKey(user, 'user'))).map(connectionOf),
        revoke: (server, user) => tokens.deleteToken(identityKey(user!, 'user'), server),
      },
      registeredServers: async () => (await new ServerRepository(database.db).list()).map((s) => s.name),
      close: async () => {
        control.stop();
        await database.close();
      },
    };
  } catch (error) {
    await database.close();
    throw error;
  }
}

/** What went wrong, with what to do about it when the gateway refused the CLI. */
function explain(error: Error, gateway: OpenedAdmin['gateway']): string {
  if (!(error instanceof GatewayAdminError) || !gateway) return error.message;
  const { holder, dataDir, token } = gateway;
  if (error.status === 401 && !token) {
    return (
      `the gateway at ${holder.url} (process ${holder.pid}) holds the embedded database in ${dataDir} and requires authentication. ` +
      `Set ${ADMIN_TOKEN_VARIABLE} (or pass --admin-token) to an admin's API key or bearer token, ` +
      `or stop the gateway to change the database directly.`
    );
  }
  if (error.status === 401) return `the gateway at ${holder.url} refused the credential: ${error.message}`;
  if (error.status === 403) return `the gateway at ${holder.url} refused: ${error.message}`;
  return error.message;
}

async function keysCommand(admin: AdminBackend, [action, target]: string[], options: AdminOptions, out: Out, err: Out): Promise<number> {
  switch (action) {
    case 'create': {
      if (!target) return usage(err, 'keys create: missing the key name');
      const expiresAt = options.expires === undefined ? undefined : parseExpiry(options.expires);
      if (expiresAt instanceof Error) return usage(err, `keys create: --expires ${expiresAt.message}`);
      const { key, record } = await admin.createKey({ name: target, subject: options.subject, groups: options.group, expiresAt });
      if (options.json) out(JSON.stringify({ key, ...record }, null, 2));
      else {
        out(key);
        err(`API key "${record.name}" (id ${record.id}, acts as ${record.subject}${record.groups.length ? `, groups ${record.groups.join(', ')}` : ''}${record.expiresAt ? `, expires ${record.expiresAt.toISOString()}` : ''}). It is not shown again.`);
      }
      return 0;
    }
    case 'list': {
      const list = await admin.listKeys();
      if (options.json) out(JSON.stringify(list, null, 2));
      else {
        const state = (k: (typeof list)[number]) => (k.revokedAt ? 'revoked' : k.expiresAt && k.expiresAt < new Date() ? 'expired' : 'active');
        table(out, ['ID', 'NAME', 'SUBJECT', 'GROUPS', 'STATE', 'EXPIRES'], list.map((k) => [k.id, k.name, k.subject, k.groups.join(',') || '-', state(k), k.expiresAt?.toISOString() ?? '-']));
        if (list.length === 0) err('no API keys yet: create one with "conflux keys create NAME"');
      }
      return 0;
    }
    case 'revoke': {
      if (!target) return usage(err, 'keys revoke: missing the key id or name');
      const revoked = await admin.revokeKey(target);
      if (!revoked) {
        err(`keys revoke: no active API key "${target}"`);
        return 1;
      }
      out(`revoked ${revoked.name} (${revoked.id})`);
      return 0;
    }
    default:
      return usage(err, `keys: unknown action "${action ?? ''}"`);
  }
}

async function accessCommand(admin: AdminBackend, [action, target]: string[], options: AdminOptions, out: Out, err: Out, warnUnknown: (server: string | undefined) => Promise<void>): Promise<number> {
  const group = options.group?.[0];
  switch (action) {
    case 'list': {
      const rules = await admin.rules();
      if (options.json) out(JSON.stringify(rules, null, 2));
      else {
        table(out, ['KIND', 'ID', 'WHO', 'SERVER', 'ACCESS'], [
          ...rules.grants.map((g) => ['grant', g.id, `${g.subjectType}:${g.subject}`, g.server, g.level]),
          ...rules.toolRules.map((r) => ['rule', r.id, `${r.subjectType}${r.subject ? `:${r.subject}` : ''}`, r.server, `${r.effect} ${r.pattern}`]),
        ]);
      }
      return 0;
    }
    case 'grant': {
      if ((options.user === undefined) === (group === undefined)) return usage(err, 'access grant: give exactly one of --user or --group');
      if (!options.server) return usage(err, 'access grant: missing --server (a server name or *)');
      const level = options.level ?? 'call';
      if (level !== 'read' && level !== 'call') return usage(err, 'access grant: --level must be read or call');
      await warnUnknown(options.server);
      const grant = await admin.addGrant({ subjectType: options.user ? 'user' : 'group', subject: (options.user ?? group)!, server: options.server, level });
      out(`grant ${grant.id}: ${grant.subjectType} ${grant.subject} may ${grant.level} on ${grant.server}`);
      return 0;
    }
    case 'rule': {
      if (options.user !== undefined && group !== undefined) return usage(err, 'access rule: give at most one of --user or --group');
      if ((options.allow === undefined) === (options.deny === undefined)) return usage(err, 'access rule: give exactly one of --allow or --deny');
      await warnUnknown(options.server);
      const rule = await admin.addToolRule({
        subjectType: options.user ? 'user' : group ? 'group' : 'everyone',
        subject: options.user ?? group ?? null,
        server: options.server ?? '*',
        effect: options.allow !== undefined ? 'allow' : 'deny',
        pattern: (options.allow ?? options.deny)!,
      });
      out(`rule ${rule.id}: ${rule.effect} ${rule.pattern} on ${rule.server} for ${rule.subject ?? 'everyone'}`);
      return 0;
    }
    case 'revoke':
    case 'remove-rule': {
      if (!target) return usage(err, `access ${action}: missing the id`);
      await (action === 'revoke' ? admin.removeGrant(target) : admin.removeToolRule(target));
      out(`removed ${target}`);
      return 0;
    }
    default:
      return usage(err, `access: unknown action "${action ?? ''}"`);
  }
}

async function connectionsCommand(connections: ConnectionsBackend, throughGateway: boolean, [action, server]: string[], options: AdminOptions, out: Out, err: Out): Promise<number> {
  switch (action) {
    case 'list': {
      const list = await connections.list(options.user);
      if (options.json) out(JSON.stringify(list, null, 2));
      else table(out, ['USER', 'SERVER', 'SOURCE', 'CREATED', 'EXPIRES', 'SCOPES'], list.map((c) => [c.user, c.server, c.source, c.createdAt.toISOString(), c.expiresAt?.toISOString() ?? '-', c.scopes.join(' ') || '-']));
      return 0;
    }
    case 'revoke': {
      if (!server) return usage(err, 'connections revoke: missing the server name');
      if (options.user === undefined && !throughGateway) return usage(err, 'connections revoke: give --user (whose connection to revoke)');
      if (!(await connections.revoke(server, options.user))) {
        err(`connections revoke: no connection to "${server}"${options.user ? ` for ${options.user}` : ''}`);
        return 1;
      }
      out(`revoked the connection to ${server}${options.user ? ` of ${options.user}` : ''}`);
      return 0;
    }
    default:
      return usage(err, `connections: unknown action "${action ?? ''}"`);
  }
}

/**
 * A grant or rule for a server nobody configured or registered is kept (the server may be
 * registered later) but said, since a typo would otherwise grant nothing, silently.
 */
async function warnOfUnknownServer(server: string | undefined, configured: readonly string[], registered: OpenedAdmin['registeredServers'], err: Out): Promise<void> {
  if (server === undefined || server === '*' || configured.includes(server)) return;
  const known = [...configured, ...((await registered?.()) ?? [])];
  if (known.includes(server)) return;
  err(
    `warning: no server named "${server}" is in the config file${registered ? ' or registered in the database' : ''}` +
      `${known.length ? ` (known: ${known.join(', ')})` : ''}; it applies once a server of that name exists`,
  );
}

/** A table with a header row, tab-separated: readable at a terminal, and easy to cut or awk. */
export function table(out: Out, header: readonly string[], rows: readonly (readonly string[])[]): void {
  out(header.join('\t'));
  for (const row of rows) out(row.join('\t'));
}

/** `30d`, `12h`, `90m` from now, or an ISO date. */
export function parseExpiry(text: string, now = new Date()): Date | Error {
  const relative = /^(\d+)([dhm])$/.exec(text);
  if (relative) {
    const unit = { d: 86_400_000, h: 3_600_000, m: 60_000 }[relative[2] as 'd' | 'h' | 'm'];
    return new Date(now.getTime() + Number(relative[1]) * unit);
  }
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return new Error(`"${text}" is neither a duration (30d, 12h, 90m) nor a date`);
  if (date <= now) return new Error(`"${text}" is in the past`);
  return date;
}

function usage(err: Out, message: string): number {
  err(message);
  return 2;
}
