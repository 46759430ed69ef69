import { ProtocolError, ProtocolErrorCode } from '@modelcontextprotocol/client';
import { encodeHeaderValue } from './standard-headers.js';

/**
 * SEP-2243 `Mcp-Param-*` headers (2026-07-28, Streamable HTTP): a tool's input schema may mark
 * a primitive argument with `x-mcp-header: <Name>`, and a call must then carry the argument's
 * value in `Mcp-Param-<Name>` too, so that infrastructure can route on it without reading the
 * body. A server on the SDK refuses a call without them (-32020). The SDK client builds them in
 * `callTool` only, from its own tool cache; the gateway forwards with a plain request, and so
 * builds them from the upstream's tool as `callTool` would (the SDK's helpers are internal).
 */
const HEADER_PREFIX = 'Mcp-Param-';
const ANNOTATION = 'x-mcp-header';
/** RFC 9110 `token`. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const PRIMITIVE_TYPES = new Set(['string', 'integer', 'number', 'boolean']);
/**
 * Caps on what a caller's arguments may put into headers (encoded bytes). HTTP servers refuse
 * large header blocks as a whole (Node's default limit is 16 KiB, many proxies allow 8 KiB)
 * with a 4xx that carries no JSON-RPC answer; refusing here names the argument, and the
 * upstream's shared connection never sees the request. Values meant for routing are short.
 */
export const MAX_PARAM_HEADER_BYTES = 4 * 1024;
export const MAX_PARAM_HEADERS_TOTAL_BYTES = 8 * 1024;

interface Declaration {
  path: readonly string[];
  headerName: string;
}

/**
 * The `Mcp-Param-*` headers for a call of a tool with `inputSchema` and `args`. An argument that
 * is absent, null or not a primitive gets no header; a schema whose declarations are unusable
 * (not a token, not a primitive type, two names equal but for case) gets none at all, as the
 * SDK client does. Throws -32602 naming the argument when a value, or all of them together,
 * exceed the caps above, unless `capped` is false (headers a caller sent, to compare with).
 */
export function paramHeaders(inputSchema: unknown, args: Record<string, unknown> | undefined, { capped = true }: { capped?: boolean } = {}): Record<string, string> {
  const declarations = declarationsOf(inputSchema);
  const headers: Record<string, string> = {};
  if (!declarations) return headers;
  let total = 0;
  for (const { path, headerName } of declarations) {
    const value = primitiveText(valueAt(args, path));
    if (value === undefined) continue;
    const encoded = encodeHeaderValue(value);
    total += encoded.length;
    if (capped && encoded.length > MAX_PARAM_HEADER_BYTES) {
      throw tooLarge(`the argument "${path.join('.')}" is too long to be sent in the Mcp-Param-${headerName} header (${encoded.length} bytes encoded; at most ${MAX_PARAM_HEADER_BYTES})`);
    }
    if (capped && total > MAX_PARAM_HEADERS_TOTAL_BYTES) {
      throw tooLarge(`the arguments sent in Mcp-Param headers are too long together (the argument "${path.join('.')}" brings them over ${MAX_PARAM_HEADERS_TOTAL_BYTES} bytes encoded)`);
    }
    headers[`${HEADER_PREFIX}${headerName}`] = encoded;
  }
  return headers;
}

function tooLarge(message: string): ProtocolError {
  return new ProtocolError(ProtocolErrorCode.InvalidParams, message);
}

/**
 * The declarations of each schema seen, found once: this runs on every call of a tool, and a
 * tool's schema is replaced, never changed, when its upstream lists it anew.
 */
const declarationsBySchema = new WeakMap<object, Declaration[] | undefined>();

function declarationsOf(schema: unknown): Declaration[] | undefined {
  if (schema === null || typeof schema !== 'object') return [];
  if (declarationsBySchema.has(schema)) return declarationsBySchema.get(schema);
  const found = declarationsIn(schema);
  declarationsBySchema.set(schema, found);
  return found;
}

/** The declarations along chains of `properties` (the only place the spec allows them); undefined when one is unusable. */
function declarationsIn(schema: unknown): Declaration[] | undefined {
  const found: Declaration[] = [];
  const names = new Set<string>();
  // Iterative, so a deep schema cannot exhaust the stack.
  const pending: { node: unknown; path: string[] }[] = [{ node: schema, path: [] }];
  while (pending.length > 0) {
    const { node, path } = pending.pop()!;
    if (node === null || typeof node !== 'object') continue;
    const { [ANNOTATION]: headerName, type, properties } = node as Record<string, unknown>;
    if (headerName !== undefined && path.length > 0) {
      if (typeof headerName !== 'string' || !TOKEN.test(headerName) || typeof type !== 'string' || !PRIMITIVE_TYPES.has(type)) return undefined;
      if (names.has(headerName.toLowerCase())) return undefined;
      names.add(headerName.toLowerCase());
      found.push({ path, headerName });
    }
    if (properties !== null && typeof properties === 'object') {
      for (const [key, child] of Object.entries(properties)) pending.push({ node: child, path: [...path, key] });
    }
  }
  return found;
}

function valueAt(root: unknown, path: readonly string[]): unknown {
  let node = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** A primitive as the header carries it: strings as they are, booleans in lower case, numbers in decimal. */
function primitiveText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'number' && Number.isFinite(value) && (!Number.isInteger(value) || Number.isSafeInteger(value))) return String(value);
  return undefined;
}
