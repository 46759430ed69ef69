import type { Principal } from '../auth/principal.js';
import type { ServerConfig } from '../config/schema.js';

/**
 * `${user.id}`, `${user.sub}`, `${user.email}`, `${user.groups}` and `${user.token}` in a
 * per-user server's definition. The config loader's `${VAR}` takes names without dots, so
 * these pass through it untouched and are filled in here, for each user's instance.
 */
const PLACEHOLDER = /\$\{user\.(id|sub|email|groups|token)\}/g;

type UserField = 'id' | 'sub' | 'email' | 'groups' | 'token';

/** What each placeholder stands for; every one empty without a user (the template instance). */
export type UserValues = Readonly<Record<UserField, string>>;

export function userValues(principal: Principal | undefined): UserValues {
  return {
    id: principal?.id ?? '',
    sub: principal?.subject ?? '',
    email: principal?.email ?? '',
    groups: principal?.groups.join(',') ?? '',
    // The caller's own credential: reaches only that caller's instance (whose redaction hides it).
    token: principal?.token?.reveal() ?? '',
  };
}

/** `text` with every user placeholder replaced. */
export function substituteUser(text: string, values: UserValues): string {
  if (!text.includes('${user.')) return text;
  return text.replace(PLACEHOLDER, (_match, field: UserField) => values[field]);
}

/**
 * The definition one user's instance runs: placeholders replaced in a stdio server's `env` and
 * `args`, or an HTTP server's `headers`. Without a principal they become empty (the template).
 */
export function withUserValues(config: ServerConfig, principal: Principal | undefined): ServerConfig {
  const values = userValues(principal);
  const map = (record: Record<string, string>) => Object.fromEntries(Object.entries(record).map(([key, value]) => [key, substituteUser(value, values)]));
  if (config.transport === 'stdio') return { ...config, args: config.args.map((arg) => substituteUser(arg, values)), env: map(config.env) };
  return { ...config, headers: map(config.headers) };
}
