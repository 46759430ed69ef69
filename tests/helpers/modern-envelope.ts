/**
 * The per-request `_meta` envelope a 2026-07-28 client puts on every request, for tests that
 * write such requests by hand.
 */
export const MODERN_VERSION = '2026-07-28';

export function modernEnvelope(capabilities: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
    'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
    'io.modelcontextprotocol/clientCapabilities': capabilities,
    ...extra,
  };
}
