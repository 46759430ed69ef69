import { CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY, type InboundModernRoute, type JSONRPCRequest } from '@modelcontextprotocol/server';
import { MODERN_PROTOCOL_VERSION } from '../upstream/era-negotiation.js';

const MESSAGE_KEYS = new Set(['jsonrpc', 'id', 'method', 'params']);
const ENVELOPE_KEYS = new Set([PROTOCOL_VERSION_META_KEY, CLIENT_INFO_META_KEY, CLIENT_CAPABILITIES_META_KEY]);
const CLIENT_INFO_KEYS = new Set(['name', 'version']);

/**
 * The SDK's classification of the common 2026-07-28 request, made on sight (as
 * `plainLegacyRequest` does for 2025 traffic): a strict JSON-RPC request (`jsonrpc`, an integer
 * or string `id`, a string `method` other than `initialize`, object `params`) whose `_meta` is
 * the envelope alone, naming `2026-07-28` as its `MCP-Protocol-Version` header does, with a
 * client that declares no capabilities and names itself by `name` and `version` only, and whose
 * `Mcp-Method` header names its method. Undefined for anything else, which the classification
 * judges in full; `tests/unit/plain-sessionless-call.test.ts` holds the two to the same answer.
 * This spares a plain 2026 request the classification's schema checks (the envelope's among
 * them), which cost a 2026 call more than anything else the 2025 path does not do.
 */
export function plainModernRoute(versionHeader: string | null, methodHeader: string | null, body: unknown): Extract<InboundModernRoute, { messageKind: 'request' }> | undefined {
  if (versionHeader !== MODERN_PROTOCOL_VERSION || !isObject(body) || !onlyKeys(body, MESSAGE_KEYS)) return undefined;
  const { jsonrpc, id, method, params } = body;
  if (jsonrpc !== '2.0' || typeof method !== 'string' || method === 'initialize' || methodHeader !== method) return undefined;
  if (typeof id !== 'string' && !Number.isSafeInteger(id)) return undefined;
  const meta = isObject(params) ? params._meta : undefined;
  if (!isObject(meta) || !onlyKeys(meta, ENVELOPE_KEYS) || meta[PROTOCOL_VERSION_META_KEY] !== versionHeader) return undefined;
  const capabilities = meta[CLIENT_CAPABILITIES_META_KEY];
  if (!isObject(capabilities) || !onlyKeys(capabilities, NONE)) return undefined;
  const info = meta[CLIENT_INFO_META_KEY];
  if (info !== undefined && !(isObject(info) && onlyKeys(info, CLIENT_INFO_KEYS) && typeof info.name === 'string' && typeof info.version === 'string')) return undefined;
  return { kind: 'modern', messageKind: 'request', message: body as JSONRPCRequest, classification: { era: 'modern', revision: versionHeader } };
}

const NONE: ReadonlySet<string> = new Set();

export function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Whether `value`'s keys are all among `allowed`. */
export function onlyKeys(value: object, allowed: ReadonlySet<string>): boolean {
  for (const key in value) if (!allowed.has(key)) return false;
  return true;
}
