/**
 * A database that cannot be used, said by its root cause (`database "x" does not exist`,
 * `connection refused at 127.0.0.1:5432`, an invalid URL): what the person who set
 * `DATABASE_URL` needs to read, where a stack trace would only bury it.
 */
export class DatabaseUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DatabaseUnavailableError';
  }
}

/** Where a PostgreSQL URL points, without its credentials: `host:port/database`. */
export interface PostgresTarget {
  /** `host:port`, as connection errors name it. */
  address: string;
  database: string;
}

/**
 * The server and database `url` names, or a `DatabaseUnavailableError` saying what is wrong
 * with it (the password never repeated). Several hosts (`h1:5432,h2:5432`) are accepted, as the
 * driver accepts them; the first is named.
 */
export function postgresTarget(url: string): PostgresTarget {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme !== 'postgres' && scheme !== 'postgresql') {
    throw new DatabaseUnavailableError(`invalid DATABASE_URL: expected postgres://user:password@host:5432/database (got "${withoutPassword(url)}")`);
  }
  const hosts = url.slice(url.indexOf('://') + 3).split(/[?/]/)[0]!.split('@').at(-1)!;
  let parsed: URL;
  try {
    parsed = new URL(url.replace(hosts, hosts.split(',')[0]!));
  } catch {
    throw new DatabaseUnavailableError(`invalid DATABASE_URL: not a URL (got "${withoutPassword(url)}")`);
  }
  const host = parsed.hostname || parsed.searchParams.get('host') || 'localhost';
  const database = decodeURIComponent(parsed.pathname.slice(1)) || decodeURIComponent(parsed.username) || 'postgres';
  return { address: `${host}:${parsed.port || 5432}`, database };
}

/** `url` with the password replaced, for messages: the URL may be mistyped past parsing. */
export function withoutPassword(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@/]*@/i, '$1:***@');
}

/** SQLSTATE classes that say the server or database cannot be used, not that a statement failed. */
const CONNECTION_STATES = /^(08|28|3D|57P0|53300)/;

/**
 * The root cause of a failure to reach or use the database at `target`, as a
 * `DatabaseUnavailableError`, or undefined when `error` is something else (a failed statement,
 * a bug), which keeps its own message and stack.
 */
export function databaseFailure(error: unknown, target: PostgresTarget): DatabaseUnavailableError | undefined {
  if (!(error instanceof Error)) return undefined;
  const { code, address, port, hostname } = error as Error & { code?: string; address?: string; port?: number; hostname?: string };
  const at = address && port ? `${address}:${port}` : target.address;
  const because = (message: string) => new DatabaseUnavailableError(message, { cause: error });
  switch (code) {
    case 'ECONNREFUSED':
      return because(`connection refused at ${at} (is PostgreSQL running there?)`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return because(`cannot resolve the database host "${hostname ?? target.address}"`);
    case 'ETIMEDOUT':
    case 'CONNECT_TIMEOUT':
      return because(`no answer from PostgreSQL at ${at} (connection timed out)`);
    case 'ECONNRESET':
    case 'CONNECTION_CLOSED':
    case 'CONNECTION_ENDED':
      return because(`PostgreSQL at ${at} closed the connection: ${error.message}`);
  }
  if (error.name === 'PostgresError' && code && CONNECTION_STATES.test(code)) return because(`${error.message} (PostgreSQL at ${target.address})`);
  return undefined;
}
