import { ProtocolErrorCode, SERVER_INFO_META_KEY, type CallToolResult, type InputRequiredResult, type RequestId } from '@modelcontextprotocol/server';
import type { Access } from '../auth/access-policy.js';
import { GATEWAY_NAME, GATEWAY_VERSION } from '../version.js';
import { replayOf, type CallReplay } from './call-handover.js';
import type { OutboundMessage } from './downstream-call.js';
import { asMcpError } from './error-mapping.js';
import type { ModernCallBridge } from './modern-call-bridge.js';
import { errorBody, textOnly } from './plain-tool-calls.js';
import type { SessionRegistry } from './session-registry.js';
import { sessionlessCall } from './sessionless-call.js';
import { callTool, type ToolCallDeps } from './tool-calls.js';

export interface SessionlessToolCallsDeps {
  toolCalls: ToolCallDeps;
  /** The per-caller slots a 2026-07-28 caller's calls take. */
  sessions: Pick<SessionRegistry, 'inCallerSlot'>;
  /** Turns a 2025 upstream's requests to the client into `input_required` rounds, as on the SDK's path. */
  inputRounds: Pick<ModernCallBridge, 'start'>;
  maxConcurrentCallsPerCaller: number;
}

/** A 2026-07-28 `tools/call` as the fast path takes it (see `plainSessionlessCall`). */
export interface SessionlessToolCall {
  id: RequestId;
  /** The params the SDK's handler would be given: the envelope lifted out, nothing else there. */
  params: { name: string; arguments?: Record<string, unknown> };
  /** The request's `_meta` envelope (its reserved keys only). */
  envelope: Record<string, unknown>;
}

/**
 * What came of a call: the one JSON-RPC message that answers it, or, when the SDK's server
 * has something to add that this path does not reproduce, the call replayed for that server
 * to answer (the upstream work is not done again).
 */
export type SessionlessAnswer = { message: object } | { handover: CallReplay };

/** The identity the SDK's per-request server stamps on every result (see `session-server.ts`). */
const SERVER_INFO = { name: GATEWAY_NAME, version: GATEWAY_VERSION };

/**
 * Error codes the SDK's server rewrites on 2026-07-28 (-32002 becomes -32602, -32042 an
 * internal error) or answers with a status of their own (-32021): left to it.
 */
const REWRITTEN_CODES: ReadonlySet<number> = new Set([ProtocolErrorCode.ResourceNotFound, ProtocolErrorCode.MissingRequiredClientCapability, ProtocolErrorCode.UrlElicitationRequired]);

/**
 * Runs a plain 2026-07-28 `tools/call` without the per-request SDK server: the same call as the
 * server's handler makes (`sessionlessCall`, the caller's slot, `ModernCallBridge`, `callTool`
 * with its routing, access checks, limits, audit and metrics), and the answer the server would
 * give when it is a plain one. Two answers are written here, as the SDK writes them:
 *
 * - a result of text blocks (and maybe `isError`), which the SDK's result check passes as it
 *   is: `resultType: "complete"` and the server's identity in `_meta` are added;
 * - a failure, as `asMcpError` makes it (codes the SDK rewrites excepted).
 *
 * Anything else (structured content, other blocks, `input_required`, a message sent about the
 * call) is handed over to the SDK's server, which answers it through its own projection, checks
 * and encoding. What is logged about a call on this path carries `path: "sessionless"`.
 */
export class SessionlessToolCalls {
  readonly #deps: SessionlessToolCallsDeps;
  readonly #toolCalls: ToolCallDeps;

  constructor(deps: SessionlessToolCallsDeps) {
    this.#deps = deps;
    this.#toolCalls = { ...deps.toolCalls, logger: deps.toolCalls.logger.child({ path: 'sessionless' }) };
  }

  /** Runs `request` for `caller`; `signal` aborted (the client went away) cancels it. */
  async answer(request: SessionlessToolCall, caller: { access: Access; rateKey: string }, signal: AbortSignal): Promise<SessionlessAnswer> {
    const { access, rateKey } = caller;
    const { logger } = this.#toolCalls;
    const notifications: OutboundMessage[] = [];
    const call = sessionlessCall(access, { id: request.id, envelope: request.envelope, signal }, async (notification) => {
      notifications.push(notification);
    });
    const round = { method: 'tools/call', target: request.params.name, caller: rateKey, progressToken: undefined, signal, principal: access.principal.id };
    let result: CallToolResult | InputRequiredResult;
    try {
      result = await this.#deps.inputRounds.start(round, call, (bridged) =>
        this.#deps.sessions.inCallerSlot(rateKey, this.#deps.maxConcurrentCallsPerCaller, () => callTool(this.#toolCalls, request.params, bridged)),
      );
    } catch (error) {
      // Mapped once here: the handler's own mapping leaves a mapped error as it is (one incident id, not two).
      const failure = asMcpError(error, logger);
      if (notifications.length > 0 || REWRITTEN_CODES.has(failure.code)) return { handover: replayOf(notifications, { ok: false, error: failure }) };
      return { message: { jsonrpc: '2.0', id: request.id, error: errorBody(failure, logger) } };
    }
    if (notifications.length > 0 || !textOnly(result)) return { handover: replayOf(notifications, { ok: true, result }) };
    return { message: { result: { ...result, resultType: 'complete', _meta: { [SERVER_INFO_META_KEY]: SERVER_INFO } }, jsonrpc: '2.0', id: request.id } };
  }
}
