/**
 * Secrets kept out of what the gateway shows. Pure functions. The rule:
 *
 * - Server definitions (REST, admins only): env and header values become `[redacted]` (names
 *   stay), a URL's credentials, the values of secret-looking query parameters and the values
 *   of secret-looking flags in a command line too, and the secrets written into `auth` (its
 *   `env://` and `file://` references stay: they say where a secret is, not what it is). Callers that are not admins get no
 *   definition at all, and of a URL only its scheme, host and port (`registry/server-view.ts`).
 * - Text that quotes an upstream (a child's stderr tail, a connection error): stored redacted
 *   as the connection's `lastError`, so `/servers`, the REST API, tool errors, broadcasts and
 *   the audit trail all get the redacted form. Hidden: the server's own env and header values
 *   (and a header's token without its scheme, URL credentials, secret query values, the
 *   values of its secret-looking command-line flags, the secrets written into its `auth`, and
 *   the credentials its connection sent lately: values read from files or the environment,
 *   access tokens issued to the gateway) wherever they appear, if at least 4 characters long;
 *   then URL credentials, secret query values,
 *   `Bearer`/`Basic` credentials, `token=...`/`"password": "..."`-style pairs, and token
 *   shapes (GitHub, GitLab, `sk-`, Stripe, Slack, AWS, Google, Conflux API keys, JWTs, PEM
 *   private keys).
 *
 * Redaction errs towards hiding: a word that merely looks like a credential goes too. A child's
 * stderr lines reach the gateway's log through its connection's redactor too: a per-user
 * child's environment holds that user's token.
 */

export const REDACTED = '[redacted]';

/**
 * Known values shorter than this are not searched for in text: replacing every "1" or "on"
 * would mangle messages ("exited with code [redacted]") while hiding nothing worth hiding.
 */
const MIN_KNOWN_SECRET_LENGTH = 4;

/** Query parameters whose value is a credential (`?key=`, `&sig=` of signed URLs, `?access_token=`...). */
const SECRET_PARAM_NAME = String.raw`[\w.-]*(?:key|token|secret|password|passwd|pwd|auth|credential|signature|sig)[\w.-]*`;
const SECRET_PARAM = new RegExp(`^${SECRET_PARAM_NAME}$`, 'i');

/**
 * `name=value` / `name: value` pairs in prose whose value is a credential. Narrower than the
 * query list: "key: ..." or "signal: SIGTERM" in an error message are not secrets.
 */
const SECRET_PAIR_NAME = String.raw`[\w.-]*(?:api[-_]?key|access[-_]?key|private[-_]?key|secret[-_]?key|token|secret|password|passwd|credential)[\w.-]*`;

/** Text patterns, applied in order after the known values. Each keeps what names the secret and hides the secret. */
const PATTERNS: readonly [RegExp, string][] = [
  // PEM private keys (a stderr tail may hold one line of it or all of it).
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g, REDACTED],
  // URL credentials: scheme://user:password@host, scheme://token@host.
  [/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@]+@/gi, `$1${REDACTED}@`],
  // Secret query parameters: ?apikey=, &token=, &client_secret=...
  [new RegExp(String.raw`([?&;]${SECRET_PARAM_NAME}=)[^&#\s"'<>]+`, 'gi'), `$1${REDACTED}`],
  // Authorization schemes.
  [/\b(Bearer)(\s+)[A-Za-z0-9\-._~+/]{6,}=*/gi, `$1$2${REDACTED}`],
  [/\b(Basic)(\s+)[A-Za-z0-9+/]{8,}={0,2}/g, `$1$2${REDACTED}`],
  // name=value and "name": "value" where the name says credential (an echoed environment, a JSON dump).
  [new RegExp(String.raw`\b(${SECRET_PAIR_NAME}["']?\s*[:=]\s*["']?)(?!\[redacted\])[^\s"',;&]+`, 'gi'), `$1${REDACTED}`],
  // Token shapes, wherever they stand.
  [/\bgh[pousr]_[A-Za-z0-9]{20,}/g, REDACTED],
  [/\bgithub_pat_[A-Za-z0-9_]{20,}/g, REDACTED],
  [/\bglpat-[A-Za-z0-9_-]{20,}/g, REDACTED],
  [/\bsk-[A-Za-z0-9_-]{16,}/g, REDACTED],
  [/\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}/g, REDACTED],
  [/\bxox[a-z]-[A-Za-z0-9-]{10,}/g, REDACTED],
  [/\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g, REDACTED],
  [/\bAIza[A-Za-z0-9_-]{35}/g, REDACTED],
  [/\bcfx_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43}/g, REDACTED],
  [/\beyJ[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*){1,2}/g, REDACTED],
];

/** A map's names kept and its values hidden (environment variables, HTTP headers). */
export function redactValues(values: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.keys(values).map((name) => [name, REDACTED]));
}

/** `url` with its credentials and the values of secret-looking query parameters hidden (what admins see). */
export function redactUrl(url: string): string {
  const parsed = parseUrl(url);
  if (!parsed) return redactText(url);
  if (parsed.username || parsed.password) {
    parsed.username = REDACTED;
    parsed.password = '';
  }
  for (const name of new Set(parsed.searchParams.keys())) {
    if (SECRET_PARAM.test(name)) parsed.searchParams.set(name, REDACTED);
  }
  // URL encodes the brackets; shown as written, so a reader sees what was hidden.
  return parsed.toString().replaceAll(encodeURIComponent(REDACTED), REDACTED);
}

/**
 * `url` as scheme, host and port alone (what callers that are not admins see). The path goes
 * too: services put keys in it (`https://host/mcp/<key>/sse`, webhook-style URLs).
 */
export function publicUrl(url: string): string {
  const parsed = parseUrl(url);
  if (!parsed) return '';
  return `${parsed.protocol}//${parsed.host}`;
}

/**
 * Command-line flags whose value is a credential: `--token`, `--api-key`, `--db_password`,
 * `-secret` (Go-style), `--auth`... Words that are credentials wherever they stand in the name
 * (`--github-token`), and short words only as a whole part of it (`--auth`, `--key`, not
 * `--author` or `--keyboard`).
 */
const SECRET_FLAG = new RegExp(
  String.raw`^--?(?:[\w.-]*(?:token|secret|passw(?:or)?d|credential|api[-_]?key|access[-_]?key|private[-_]?key)[\w.-]*|(?:[\w.-]*[-_.])?(?:auth|authorization|key|pwd|pass)(?:[-_.][\w.-]*)?)$`,
  'i',
);

/**
 * The credentials in a command line: the argument after a secret-looking flag
 * (`--token abc`), and the value of `--secret-looking-flag=value`. Only those: hiding every
 * argument would mangle messages that quote file names or subcommands.
 */
export function secretArgumentValues(args: readonly string[]): string[] {
  const values: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    // `--db=postgres://app:pw@db/x`: the password may be printed without its URL.
    for (const [url] of arg.matchAll(URL_IN_TEXT)) values.push(...urlSecrets(url));
    const eq = arg.indexOf('=');
    if (eq > 0) {
      if (SECRET_FLAG.test(arg.slice(0, eq)) && eq < arg.length - 1) values.push(arg.slice(eq + 1));
    } else if (SECRET_FLAG.test(arg) && i + 1 < args.length) {
      // Whatever follows is taken as the value, even if it looks like a flag: passwords may start with "-".
      values.push(args[++i]!);
    }
  }
  return [...new Set(values)];
}

/** `args` with the values `secretArgumentValues` finds replaced (`--token [redacted]`, `--api-key=[redacted]`). */
export function redactArguments(args: readonly string[]): string[] {
  const out = [...args];
  for (let i = 0; i < out.length; i++) {
    const arg = out[i]!;
    const eq = arg.indexOf('=');
    if (eq > 0) {
      if (SECRET_FLAG.test(arg.slice(0, eq)) && eq < arg.length - 1) out[i] = `${arg.slice(0, eq + 1)}${REDACTED}`;
    } else if (SECRET_FLAG.test(arg) && i + 1 < out.length) {
      out[++i] = REDACTED;
    }
  }
  return out;
}

/**
 * Free text with secrets hidden: every `known` value (a server's own env and header values),
 * then URL credentials, secret query values, `Bearer ...`, `token=...`-style pairs and common
 * token shapes (GitHub, GitLab, OpenAI-style `sk-`, Stripe, Slack, AWS, Google, our API keys,
 * JWTs, PEM private keys).
 */
export function redactText(text: string, known: readonly string[] = []): string {
  let out = text;
  // Longest first, so a value that contains another is hidden whole.
  const values = [...new Set(known)].filter((v) => v.length >= MIN_KNOWN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
  for (const value of values) out = out.split(value).join(REDACTED);
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

/**
 * What `redactText` must hide for one server beyond the general patterns: its env and header
 * values, URL credentials and query values, and the values of secret-looking flags in its
 * command line (a child often prints its own arguments when it fails).
 */
export function secretsOf(definition: {
  env?: Readonly<Record<string, string>> | undefined;
  headers?: Readonly<Record<string, string>> | undefined;
  url?: string | undefined;
  args?: readonly string[] | undefined;
}): string[] {
  const values = [...Object.values(definition.env ?? {}), ...Object.values(definition.headers ?? {}), ...secretArgumentValues(definition.args ?? [])];
  for (const header of Object.values(definition.headers ?? {})) {
    // "Bearer abc": the token alone may be printed too.
    const token = /^\S+\s+(\S+)$/.exec(header)?.[1];
    if (token) values.push(token);
  }
  if (definition.url) values.push(...urlSecrets(definition.url));
  return values;
}

const URL_IN_TEXT = /[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi;

/** A URL's credentials (as written and decoded) and the values of its secret-looking query parameters. */
function urlSecrets(text: string): string[] {
  const url = parseUrl(text);
  if (!url) return [];
  const values: string[] = [];
  for (const part of [url.username, url.password]) if (part) values.push(part, decoded(part));
  for (const [name, value] of url.searchParams) if (SECRET_PARAM.test(name)) values.push(value);
  return values;
}

/**
 * A redactor for one server's text, with its known secrets gathered once, and `more()` asked
 * at each use (values only known while running: credentials read from a file or the
 * environment, access tokens issued to the gateway).
 */
export function textRedactor(definition: Parameters<typeof secretsOf>[0], more?: () => Iterable<string>): (text: string) => string {
  const known = secretsOf(definition);
  return (text) => redactText(text, more ? [...known, ...more()] : known);
}

/** A credential reference that names where the secret is, and so is safe to show. */
export function isCredentialReference(value: string): boolean {
  return value.startsWith('env://') || value.startsWith('file://');
}

/** The secret-bearing fields of a server's `auth`: a static credential, an OAuth client secret or private key. */
const AUTH_SECRET_FIELDS = ['credential', 'clientSecret', 'privateKey'] as const;

/**
 * A server's `auth` as admins see it: a secret written into the config (directly or through
 * `${VAR}`) becomes `[redacted]`; an `env://` or `file://` reference stays (it names where the
 * secret is, not what it is).
 */
export function redactAuth<T extends object>(auth: T): T {
  const out = { ...auth } as Record<string, unknown>;
  for (const field of AUTH_SECRET_FIELDS) {
    const value = out[field];
    if (typeof value === 'string' && !isCredentialReference(value)) out[field] = REDACTED;
  }
  return out as T;
}

/** The secrets written into a server's `auth` (not references), for `redactText`. */
export function authSecrets(auth: object | undefined): string[] {
  if (!auth) return [];
  const fields = auth as Record<string, unknown>;
  return AUTH_SECRET_FIELDS.map((field) => fields[field]).filter((value): value is string => typeof value === 'string' && !isCredentialReference(value));
}

/**
 * What one request's credentials reveal, for `redactText`: each header and query value, a
 * header's credential without its scheme (`Bearer <token>`), and a Basic header's decoded
 * `user:password` and password (an upstream may echo any of them).
 */
export function credentialSecrets(credentials: { headers: Readonly<Record<string, string>>; query: Readonly<Record<string, string>> }): string[] {
  const values = [...Object.values(credentials.headers), ...Object.values(credentials.query)];
  for (const header of Object.values(credentials.headers)) {
    const match = /^(\S+)\s+(\S.*)$/.exec(header);
    if (!match) continue;
    values.push(match[2]!);
    if (match[1]!.toLowerCase() === 'basic') {
      const decodedPair = Buffer.from(match[2]!, 'base64').toString('utf8');
      values.push(decodedPair);
      const colon = decodedPair.indexOf(':');
      if (colon >= 0) values.push(decodedPair.slice(colon + 1));
    }
  }
  return values;
}

function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function parseUrl(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}
