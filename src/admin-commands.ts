import { join } from 'node:path';
import { pino } from 'pino';
import { AccessControl } from './auth/access-control.js';
import { ApiKeys } from './auth/api-keys.js';
import type { Environment } from './config/env.js';
import type { AccessSettings } from './config/schema.js';
import { AccessRepository } from './store/access-repository.js';
import { ApiKeyRepository } from './store/api-key-repository.js';
import { openDatabase } from './store/database.js';

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
}

export const ADMIN_USAGE = `  keys create NAME       Create an API key (printed once) [--group G]... [--subject S] [--expires 30d|2027-01-01]
  keys list              List API keys (never the keys themselves)
  keys revoke ID|NAME    Revoke an API key
  access list            List grants and tool rules
  access grant           Grant a level on a server: --user U | --group G, --server S|*, [--level read|call]
  access rule            Allow or deny tools: [--user U | --group G] [--server S] --allow GLOB | --deny GLOB
  access revoke ID       Remove a stored grant
  access remove-rule ID  Remove a stored tool rule
`;

type Out = (line: string) => void;

/**
 * `keys` and `access`: the admin API's key and rule management, run against the database
 * directly (the gateway need not be running; a running one sees rule changes within
 * `access.refreshSeconds` and key changes at once).
 */
export async function adminCommand(command: 'keys' | 'access', rest: string[], options: AdminOptions, env: Environment, access: AccessSettings, out: Out, err: Out): Promise<number> {
  const database = await openDatabase({ url: env.databaseUrl, dataDir: join(env.dataDir, 'pgdata') });
  try {
    await database.migrate();
    if (command === 'keys') return await keysCommand(new ApiKeys(new ApiKeyRepository(database.db)), rest, options, out, err);
    const control = new AccessControl(access, new AccessRepository(database.db), pino({ enabled: false }));
    await control.start();
    try {
      return await accessCommand(control, rest, options, out, err);
    } finally {
      control.stop();
    }
  } finally {
    await database.close();
  }
}

async function keysCommand(keys: ApiKeys, [action, target]: string[], options: AdminOptions, out: Out, err: Out): Promise<number> {
  switch (action) {
    case 'create': {
      if (!target) return usage(err, 'keys create: missing the key name');
      const expiresAt = options.expires === undefined ? undefined : parseExpiry(options.expires);
      if (expiresAt instanceof Error) return usage(err, `keys create: --expires ${expiresAt.message}`);
      const { key, record } = await keys.create({ name: target, subject: options.subject, groups: options.group, expiresAt });
      if (options.json) out(JSON.stringify({ key, ...record }, null, 2));
      else {
        out(key);
        err(`API key "${record.name}" (id ${record.id}, acts as ${record.subject}${record.groups.length ? `, groups ${record.groups.join(', ')}` : ''}${record.expiresAt ? `, expires ${record.expiresAt.toISOString()}` : ''}). It is not shown again.`);
      }
      return 0;
    }
    case 'list': {
      const list = await keys.list();
      if (options.json) out(JSON.stringify(list, null, 2));
      else for (const k of list) out([k.id, k.name, k.subject, k.groups.join(',') || '-', k.revokedAt ? 'revoked' : k.expiresAt && k.expiresAt < new Date() ? 'expired' : 'active', k.expiresAt?.toISOString() ?? '-'].join('\t'));
      return 0;
    }
    case 'revoke': {
      if (!target) return usage(err, 'keys revoke: missing the key id or name');
      const revoked = await keys.revoke(target);
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

async function accessCommand(control: AccessControl, [action, target]: string[], options: AdminOptions, out: Out, err: Out): Promise<number> {
  const group = options.group?.[0];
  switch (action) {
    case 'list': {
      const rules = control.rules();
      if (options.json) out(JSON.stringify(rules, null, 2));
      else {
        for (const g of rules.grants) out(`grant\t${g.id}\t${g.subjectType}:${g.subject}\t${g.server}\t${g.level}`);
        for (const r of rules.toolRules) out(`rule\t${r.id}\t${r.subjectType}${r.subject ? `:${r.subject}` : ''}\t${r.server}\t${r.effect} ${r.pattern}`);
      }
      return 0;
    }
    case 'grant': {
      if ((options.user === undefined) === (group === undefined)) return usage(err, 'access grant: give exactly one of --user or --group');
      if (!options.server) return usage(err, 'access grant: missing --server (a server name or *)');
      const level = options.level ?? 'call';
      if (level !== 'read' && level !== 'call') return usage(err, 'access grant: --level must be read or call');
      const grant = await control.addGrant({ subjectType: options.user ? 'user' : 'group', subject: (options.user ?? group)!, server: options.server, level });
      out(`grant ${grant.id}: ${grant.subjectType} ${grant.subject} may ${grant.level} on ${grant.server}`);
      return 0;
    }
    case 'rule': {
      if (options.user !== undefined && group !== undefined) return usage(err, 'access rule: give at most one of --user or --group');
      if ((options.allow === undefined) === (options.deny === undefined)) return usage(err, 'access rule: give exactly one of --allow or --deny');
      const rule = await control.addToolRule({
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
      try {
        await (action === 'revoke' ? control.removeGrant(target) : control.removeToolRule(target));
      } catch (error) {
        err(`access ${action}: ${(error as Error).message}`);
        return 1;
      }
      out(`removed ${target}`);
      return 0;
    }
    default:
      return usage(err, `access: unknown action "${action ?? ''}"`);
  }
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
