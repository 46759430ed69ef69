/**
 * `_meta` keys under this prefix are the protocol's own (the 2026 per-request envelope:
 * protocol version, client info and capabilities, log level; a server's identity on results).
 * They describe one hop, client to server, so a gateway never carries them across: the SDK
 * client adds its own envelope towards an upstream, and the gateway's server side its own
 * towards a client.
 */
const RESERVED_PREFIX = 'io.modelcontextprotocol/';

/**
 * `value` without the reserved keys of its `_meta` (and without `_meta` when nothing else was
 * in it). Everything else, including a result's `resultType`, `inputRequests` and
 * `requestState`, is left as it is. Returns `value` itself when there is nothing to remove, so
 * the common case allocates nothing.
 */
export function withoutHopMeta<T extends Record<string, unknown> | undefined>(value: T): T {
  const meta = value?._meta;
  if (!meta || typeof meta !== 'object' || Array.isArray(meta)) return value;
  const keys = Object.keys(meta);
  if (!keys.some((key) => key.startsWith(RESERVED_PREFIX))) return value;
  const kept: Record<string, unknown> = {};
  for (const key of keys) {
    if (!key.startsWith(RESERVED_PREFIX)) kept[key] = (meta as Record<string, unknown>)[key];
  }
  const { _meta: _dropped, ...rest } = value as Record<string, unknown>;
  return (Object.keys(kept).length > 0 ? { ...rest, _meta: kept } : rest) as T;
}
