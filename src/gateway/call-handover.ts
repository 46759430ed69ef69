import type { AuthInfo, CallToolResult, InputRequiredResult } from '@modelcontextprotocol/server';
import type { DownstreamCall, OutboundMessage } from './downstream-call.js';

/**
 * A 2026-07-28 `tools/call` the sessionless fast path has run, replayed onto the call the SDK's
 * per-request server makes for the same request: the messages sent about it, then its result
 * or its failure. The upstream work is done once; the SDK's server answers with what it came
 * to, through its own checks and encoding.
 */
export type CallReplay = (call: DownstreamCall) => Promise<CallToolResult | InputRequiredResult>;

/** How a call the fast path ran came out. */
export type CallOutcome = { ok: true; result: CallToolResult | InputRequiredResult } | { ok: false; error: unknown };

/** The replay of a call that sent `notifications` about itself and came to `outcome`. */
export function replayOf(notifications: readonly OutboundMessage[], outcome: CallOutcome): CallReplay {
  return async (call) => {
    for (const notification of notifications) await call.sendNotification(notification);
    if (!outcome.ok) throw outcome.error;
    return outcome.result;
  };
}

/**
 * `authInfo` carrying `replay` to the request's handler. `authInfo` is the one value the SDK's
 * handler passes from the HTTP layer to the handlers (the caller's rights ride in it too);
 * only the gateway's own HTTP layer sets it, never a request.
 */
export function withHandover(authInfo: AuthInfo, replay: CallReplay): AuthInfo {
  return { ...authInfo, extra: { ...authInfo.extra, handover: replay } };
}

/** The replay `authInfo` carries, if any. */
export function handoverIn(authInfo: AuthInfo | undefined): CallReplay | undefined {
  const replay = authInfo?.extra?.handover;
  return typeof replay === 'function' ? (replay as CallReplay) : undefined;
}
