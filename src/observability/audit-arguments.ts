/**
 * What the audit trail stores of a call's arguments: a copy with secrets replaced, bounded in
 * depth and in size. Pure functions; `AuditLog` applies them to every event.
 *
 * Markers a reader of the trail may meet in stored arguments:
 * - `"[redacted]"`: the value of a key matching `gateway.audit.redactKeys`, and, in admin
 *   events, every value under `env` or `headers`, the values of secret-looking flags in an
 *   `args` list (`["--token", "[redacted]", "--api-key=[redacted]"]`) and the credentials in
 *   URLs (`https://[redacted]@host/path?apikey=[redacted]`).
 * - `"[cut: nested deeper than N levels]"`: what lay below the depth limit.
 * - `{"_truncated": true, "originalBytes": N, "preview": "..."}` in place of the whole value:
 *   its JSON was over `gateway.audit.maxArgumentBytes`; `preview` is the start of that JSON
 *   (already redacted), and the stored marker itself fits in the limit.
 * - `{"_unrecordable": true, "reason": "..."}`: the arguments could not be prepared at all.
 */

import { redactArguments } from './redact.js';

export const REDACTED = '[redacted]';

/**
 * Arguments deeper than this are cut. Nobody reads an audit row 64 levels down, and a bounded
 * depth keeps every later step (JSON.stringify, PostgreSQL's jsonb parser) off the stack limit:
 * a 3,000-level argument used to overflow the stack here and fail the request after it ran.
 */
export const MAX_STORED_DEPTH = 64;

export interface StoredArgumentsOptions {
  /** Keys whose values are replaced, at any depth. */
  redactKey: RegExp;
  /** Largest stored JSON, in UTF-8 bytes. */
  maxBytes: number;
  /** Admin changes: `env` and `headers` values, secret flag values in `args` and URL credentials are redacted whatever the key. */
  admin?: boolean | undefined;
  maxDepth?: number | undefined;
}

export interface TruncatedArguments {
  _truncated: true;
  originalBytes: number;
  preview: string;
}

/** The form of `value` the audit trail stores. Never throws for any JSON-like input. */
export function storedArguments(value: unknown, options: StoredArgumentsOptions): unknown {
  if (value === undefined) return undefined;
  let copy: unknown;
  let json: string;
  try {
    copy = redactedCopy(value, options);
    json = JSON.stringify(copy) ?? 'null';
  } catch (error) {
    return { _unrecordable: true, reason: error instanceof Error ? error.message.slice(0, 200) : 'unknown' };
  }
  // A UTF-16 unit is at most 3 UTF-8 bytes: most arguments fit without counting.
  if (json.length * 3 <= options.maxBytes) return copy;
  const bytes = Buffer.byteLength(json, 'utf8');
  return bytes <= options.maxBytes ? copy : truncated(json, bytes, options.maxBytes);
}

/**
 * A copy of `value` with secrets replaced and depth bounded, walked with an explicit stack so
 * no input depth can overflow the call stack.
 */
export function redactedCopy(value: unknown, options: StoredArgumentsOptions): unknown {
  const maxDepth = options.maxDepth ?? MAX_STORED_DEPTH;
  const tooDeep = `[cut: nested deeper than ${maxDepth} levels]`;
  const seen = new WeakSet<object>();
  const root: { value?: unknown } = {};
  // Each entry writes the copy of `source` into `into[key]`.
  const stack: { source: unknown; into: Record<string | number, unknown>; key: string | number; depth: number }[] = [{ source: value, into: root, key: 'value', depth: 0 }];
  while (stack.length > 0) {
    const { source, into, key, depth } = stack.pop()!;
    if (typeof source === 'string') {
      into[key] = options.admin ? redactUrlCredentials(source) : source;
      continue;
    }
    if (source === null || typeof source !== 'object') {
      into[key] = source;
      continue;
    }
    if (depth >= maxDepth) {
      into[key] = tooDeep;
      continue;
    }
    if (seen.has(source)) {
      into[key] = '[circular]';
      continue;
    }
    seen.add(source);
    if (Array.isArray(source)) {
      const out: unknown[] = new Array<unknown>(source.length);
      into[key] = out;
      for (let i = 0; i < source.length; i++) stack.push({ source: source[i], into: out as unknown as Record<number, unknown>, key: i, depth: depth + 1 });
      continue;
    }
    const out: Record<string, unknown> = {};
    into[key] = out;
    for (const [k, v] of Object.entries(source)) {
      if (options.redactKey.test(k)) out[k] = REDACTED;
      else if (options.admin && SECRET_MAPS.test(k)) out[k] = redactedValues(v);
      else if (options.admin && COMMAND_LINE.test(k) && isStringList(v)) out[k] = redactArguments(v).map(redactUrlCredentials);
      else {
        out[k] = undefined; // holds the key's place, so the copy keeps the original key order
        stack.push({ source: v, into: out, key: k, depth: depth + 1 });
      }
    }
  }
  return root.value;
}

/** Keys of a server definition whose values are secrets whatever their names. */
const SECRET_MAPS = /^(?:env|headers)$/i;

/** The key of a stdio server's command line, whose flags may carry credentials (`--token abc`). */
const COMMAND_LINE = /^args$/i;

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/** `{NAME: value}` → `{NAME: "[redacted]"}`: the names say what is set, the values stay out. */
function redactedValues(map: unknown): unknown {
  if (map === null || typeof map !== 'object' || Array.isArray(map)) return REDACTED;
  return Object.fromEntries(Object.keys(map).map((k) => [k, REDACTED]));
}

const URL_IN_TEXT = /[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi;

/**
 * Every URL in `text` with its user info, query values and fragment replaced:
 * `postgres://u:p@db/x?sslkey=k` → `postgres://[redacted]@db/x?sslkey=[redacted]`.
 */
export function redactUrlCredentials(text: string): string {
  if (!text.includes('://')) return text;
  return text.replace(URL_IN_TEXT, (url) => {
    const schemeEnd = url.indexOf('://') + 3;
    const authorityEnd = firstIndexOf(url, '/?#', schemeEnd);
    let authority = url.slice(schemeEnd, authorityEnd);
    const at = authority.lastIndexOf('@');
    if (at >= 0) authority = `${REDACTED}@${authority.slice(at + 1)}`;
    let rest = url.slice(authorityEnd);
    const hash = rest.indexOf('#');
    if (hash >= 0) rest = `${rest.slice(0, hash)}#${REDACTED}`;
    rest = rest.replace(/([?&][^=&#]*=)[^&#]*/g, `$1${REDACTED}`);
    return url.slice(0, schemeEnd) + authority + rest;
  });
}

function firstIndexOf(text: string, characters: string, from: number): number {
  for (let i = from; i < text.length; i++) if (characters.includes(text[i]!)) return i;
  return text.length;
}

/** The marker stored for an over-long value: the start of its JSON, the whole marker within `maxBytes`. */
function truncated(json: string, originalBytes: number, maxBytes: number): TruncatedArguments {
  const marker = (preview: string): TruncatedArguments => ({ _truncated: true, originalBytes, preview });
  // Escaping in the stored JSON (quotes, control characters) can grow the preview: shrink by the overshoot until it fits.
  let budget = maxBytes - Buffer.byteLength(JSON.stringify(marker('')), 'utf8');
  for (let attempt = 0; attempt < 8 && budget > 0; attempt++) {
    const candidate = marker(utf8Prefix(json, budget));
    const size = Buffer.byteLength(JSON.stringify(candidate), 'utf8');
    if (size <= maxBytes) return candidate;
    budget -= size - maxBytes;
  }
  return marker('');
}

/** The longest prefix of `text` of at most `bytes` UTF-8 bytes that ends on a whole character. */
function utf8Prefix(text: string, bytes: number): string {
  const { read } = new TextEncoder().encodeInto(text, new Uint8Array(bytes));
  return text.slice(0, read);
}
