import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  isJsonContentType,
  PROTOCOL_VERSION_META_KEY,
  type InboundClassificationOutcome,
} from '@modelcontextprotocol/server';
import { plainParams } from '../gateway/plain-tool-calls.js';
import type { SessionlessToolCall } from '../gateway/sessionless-tool-calls.js';
import { declaresTasks } from '../gateway/task-wire.js';
import { MODERN_PROTOCOL_VERSION } from '../upstream/era-negotiation.js';
import { isObject, onlyKeys } from './plain-modern-route.js';

const MESSAGE_KEYS = new Set(['jsonrpc', 'id', 'method', 'params']);
const PARAMS_KEYS = new Set(['name', 'arguments', '_meta']);
/** No `logLevel` (log messages would be streamed ahead of the answer), no progress token, no trace context. */
const ENVELOPE_KEYS = new Set([PROTOCOL_VERSION_META_KEY, CLIENT_INFO_META_KEY, CLIENT_CAPABILITIES_META_KEY]);
/** What a client declares to be asked things mid-call (through `input_required` rounds). */
const ASKABLE = ['sampling', 'elicitation', 'roots'];

/**
 * The request when the SDK's `createMcpHandler` would serve it to the `tools/call` handler of a
 * per-request server, and nothing about the call can need the client: undefined otherwise, and
 * then that handler serves it, refusals included. Each rung the SDK applies before the handler
 * is passed here only in its plain case, never judged:
 *
 * - classification (`route`, as the endpoint routed by it: the SDK's, or the same made on sight
 *   by `plainModernRoute`): a JSON-RPC request whose envelope is valid and whose
 *   `MCP-Protocol-Version` and `Mcp-Method` headers, where present, agree with it;
 * - the revision it claims is one the SDK serves (`2026-07-28`);
 * - `Content-Type` JSON, as the handler's first check asks;
 * - the standard headers present (`MCP-Protocol-Version`, `Mcp-Method`), and `Mcp-Name` equal to
 *   `params.name` as sent (its Base64 form is left to the SDK to decode);
 * - `tools/call` requires no client capability;
 * - the params fit the `tools/call` schema: `name`, maybe `arguments` (an object), and `_meta`
 *   holding only the envelope, which the SDK lifts out before the handler sees the params.
 *
 * And the call asks nothing of the client: the envelope names no log level and carries no
 * progress token (nothing is streamed ahead of the answer), no retry fields, no task, and the
 * client declares none of sampling, elicitation, roots or the Tasks extension.
 */
export function plainSessionlessCall(headers: Headers, route: InboundClassificationOutcome | undefined): SessionlessToolCall | undefined {
  if (route?.kind !== 'modern' || route.messageKind !== 'request' || route.classification.revision !== MODERN_PROTOCOL_VERSION) return undefined;
  const message = route.message;
  if (message.method !== 'tools/call' || !onlyKeys(message, MESSAGE_KEYS)) return undefined;
  const params = message.params;
  if (!plainParams(params) || !onlyKeys(params, PARAMS_KEYS)) return undefined;
  const envelope = (params as { _meta?: unknown })._meta;
  if (!isObject(envelope) || !onlyKeys(envelope, ENVELOPE_KEYS)) return undefined;
  const capabilities = envelope[CLIENT_CAPABILITIES_META_KEY];
  if (!isObject(capabilities) || ASKABLE.some((key) => key in capabilities) || declaresTasks(capabilities)) return undefined;
  if (!isJsonContentType(headers.get('content-type')) || headers.get('mcp-protocol-version') === null || headers.get('mcp-method') === null) return undefined;
  const { name, arguments: args } = params;
  const named = headers.get('mcp-name');
  if (named !== name || (named.startsWith('=?base64?') && named.endsWith('?='))) return undefined;
  return { id: message.id, params: args === undefined ? { name } : { name, arguments: args }, envelope };
}
