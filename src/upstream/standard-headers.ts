import { PROTOCOL_VERSION_META_KEY, type JSONRPCMessage } from '@modelcontextprotocol/client';

/**
 * The params field each method's `Mcp-Name` header mirrors (SEP-2243), as the SDK's own
 * transport and the SDK's HTTP entry (which checks the header against the body) agree; the
 * Tasks extension (SEP-2663) adds its methods, named by `taskId`.
 */
const MCP_NAME_SOURCE: Readonly<Record<string, string>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
  'tasks/get': 'taskId',
  'tasks/update': 'taskId',
  'tasks/cancel': 'taskId',
};

/**
 * The per-request headers a 2026-07-28 request needs on Streamable HTTP, taken from the message
 * itself: `MCP-Protocol-Version` from its `_meta` envelope, `Mcp-Method`, and `Mcp-Name` where
 * the method has one. Undefined for anything without an envelope (every 2025-era message,
 * responses and notifications), which keeps the legacy wire byte for byte as it was.
 */
export function standardHeaders(message: JSONRPCMessage): Record<string, string> | undefined {
  const version = envelopeVersion(message);
  if (version === undefined || !('method' in message)) return undefined;
  const headers: Record<string, string> = { 'mcp-protocol-version': version, 'mcp-method': message.method };
  const field = Object.hasOwn(MCP_NAME_SOURCE, message.method) ? MCP_NAME_SOURCE[message.method] : undefined;
  const name = field ? (message.params as Record<string, unknown> | undefined)?.[field] : undefined;
  if (typeof name === 'string') headers['mcp-name'] = encodeHeaderValue(name);
  return headers;
}

/** The protocol version a request's `_meta` envelope claims; only requests carry one. */
export function envelopeVersion(message: JSONRPCMessage): string | undefined {
  if (!('method' in message) || !('id' in message)) return undefined;
  const version = (message.params?._meta as Record<string, unknown> | undefined)?.[PROTOCOL_VERSION_META_KEY];
  return typeof version === 'string' ? version : undefined;
}

const BASE64_PREFIX = '=?base64?';
const BASE64_SUFFIX = '?=';

/**
 * A header value as SEP-2243 encodes it: plain when it is printable ASCII without leading or
 * trailing space, else `=?base64?<base64 of its UTF-8>?=` (also when it already looks like
 * that, so it cannot be misread).
 */
export function encodeHeaderValue(value: string): string {
  const plain = value.length > 0 && value === value.trim() && /^[\t\x20-\x7e]*$/.test(value) && !(value.startsWith(BASE64_PREFIX) && value.endsWith(BASE64_SUFFIX));
  return plain ? value : `${BASE64_PREFIX}${Buffer.from(value, 'utf8').toString('base64')}${BASE64_SUFFIX}`;
}

/** A header value as `encodeHeaderValue` writes it, read back; undefined when its base64 form is malformed. */
export function decodeHeaderValue(header: string): string | undefined {
  if (!(header.startsWith(BASE64_PREFIX) && header.endsWith(BASE64_SUFFIX))) return header;
  const encoded = header.slice(BASE64_PREFIX.length, header.length - BASE64_SUFFIX.length);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded) || encoded.length % 4 !== 0) return undefined;
  return Buffer.from(encoded, 'base64').toString('utf8');
}
