import type { Result, ServerContext } from '@modelcontextprotocol/server';
import { afterEach, describe, expect, it } from 'vitest';
import type { Access } from '../../src/auth/access-policy.js';
import type { DownstreamCall, OutboundMessage } from '../../src/gateway/downstream-call.js';
import { ModernCallBridge } from '../../src/gateway/modern-call-bridge.js';
import { silentLogger } from '../../src/observability/logger.js';
import { BusRpc } from '../../src/state/bus-rpc.js';
import { MemoryHub, MemorySharedState } from '../../src/state/memory-state.js';
import { scaled } from '../helpers/load-scale.js';

/**
 * A 2026-07-28 call paused on one replica (`holder`) and retried through another (`origin`),
 * both real bridges on one MemoryHub, while one of them shuts down: `stop()` when its drain
 * begins, `close()` at its end, before its bus closes (as `Conflux.stop` calls them).
 */
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const ann = { principal: { id: 'ann' } } as unknown as Access;
const target = { target: 'alpha__ask_then_work', caller: 'principal:ann' };
const question: OutboundMessage = { method: 'elicitation/create', params: { message: 'name?', requestedSchema: { type: 'object', properties: {} } } };

function replica(hub: MemoryHub, keepAliveMs: number) {
  const state = new MemorySharedState(hub);
  const rpc = new BusRpc(state.bus, silentLogger());
  const bridge = new ModernCallBridge({ ttlMs: 60_000, capacity: 10, capacityPerCaller: 10, logger: silentLogger(), replicas: { replicaId: state.replicaId, rpc, keepAliveMs } });
  cleanups.push(async () => {
    bridge.stop();
    await bridge.close();
    rpc.close();
  });
  return { id: state.replicaId, bridge };
}

/** What the bridge reads of a request: its method, signal, progress token, state and answers, and the caller ann. */
function request(signal: AbortSignal, retry?: { state: string; responses: Record<string, unknown> }): ServerContext {
  return {
    mcpReq: { method: 'tools/call', signal, _meta: { progressToken: 7 }, requestState: () => retry?.state, inputResponses: retry?.responses },
    http: { authInfo: { token: 't', clientId: 'c', scopes: [], extra: { access: ann } } },
  } as unknown as ServerContext;
}

/** The downstream call of one request: what reaches its client is kept in `heard`. */
function client(): DownstreamCall & { heard: OutboundMessage[] } {
  const heard: OutboundMessage[] = [];
  return {
    principal: 'ann',
    access: ann,
    channel: 'mcp',
    sessionId: undefined,
    clientCapabilities: undefined,
    signal: new AbortController().signal,
    heard,
    sendNotification: async (notification) => void heard.push(notification),
    sendRequest: () => Promise.reject(new Error('a 2026-07-28 client is not asked mid-call')),
  };
}

/**
 * Two replicas with keep-alives `keepAliveMs` apart. Pauses a call on `holder` (its upstream work
 * asks a name, reports progress, then works until `round.finish` or cancellation), and retries it
 * through `origin`. Resolves once the retry's client heard the first progress report, the work
 * running on the holder.
 */
async function pausedThenRetried(keepAliveMs: number) {
  const hub = new MemoryHub();
  const [origin, holder] = [replica(hub, keepAliveMs), replica(hub, keepAliveMs)];
  let finish = () => {};
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const work = { signal: undefined as AbortSignal | undefined };
  const run = async (call: DownstreamCall): Promise<Result> => {
    work.signal = call.signal;
    const answer = await call.sendRequest(question);
    await call.sendNotification({ method: 'notifications/progress', params: { progress: 1 } });
    await Promise.race([finished, new Promise((_resolve, reject) => call.signal.addEventListener('abort', () => reject(call.signal.reason), { once: true }))]);
    await call.sendNotification({ method: 'notifications/progress', params: { progress: 2 } });
    return { content: [{ type: 'text', text: `worked after ${String(answer.action)}` }] };
  };
  const paused = (await holder.bridge.serve(request(new AbortController().signal), target, client(), run)) as { resultType: string; requestState: string };
  expect(paused.resultType).toBe('input_required');
  expect(holder.bridge.paused).toBe(1);
  const retryClient = client();
  const retry = { state: paused.requestState, responses: { 'elicitation-1': { action: 'accept', content: {} } } };
  const answered = origin.bridge.serve(request(new AbortController().signal, retry), target, retryClient, () => Promise.reject(new Error('the work runs on the holder'))).catch((error: unknown) => error);
  await expect.poll(() => retryClient.heard.length).toBe(1);
  return { origin, holder, round: { finish, work, retryClient, answered } };
}

/**
 * Keep-alives short enough for the test to wait out several, long enough that a busy machine's
 * pauses of the event loop do not pass for three missed ones (at 20 ms, a pause of 60 ms ended a
 * round that was going on).
 */
const KEEP_ALIVE_MS = scaled(100);

/** Four keep-alive periods: longer than the three missed ones after which the replica the retry came through gives the holder up, and the two unheard ones after which the holder gives that replica up. */
const beyondKeepAlives = () => new Promise((resolve) => setTimeout(resolve, 4 * KEEP_ALIVE_MS));

describe('a paused call retried through another replica, while one of the two stops', () => {
  it('goes on, progress and result, when the replica the retry came through begins to stop', async () => {
    const { origin, round } = await pausedThenRetried(KEEP_ALIVE_MS);
    origin.bridge.stop();
    await beyondKeepAlives();
    round.finish();
    expect(await round.answered).toEqual({ content: [{ type: 'text', text: 'worked after accept' }] });
    expect(round.retryClient.heard).toEqual([
      { method: 'notifications/progress', params: { progress: 1, progressToken: 7 } },
      { method: 'notifications/progress', params: { progress: 2, progressToken: 7 } },
    ]);
  });

  it('goes on when the replica holding the call begins to stop, which refuses retries forwarded afterwards', async () => {
    const { origin, holder, round } = await pausedThenRetried(KEEP_ALIVE_MS);
    // Another call of the holder's, paused: cancelled when the drain begins, its retry refused.
    const other = (await holder.bridge.serve(request(new AbortController().signal), target, client(), (call) => call.sendRequest(question).then(() => ({ content: [] })))) as { requestState: string };
    holder.bridge.stop();
    expect(holder.bridge.paused).toBe(0);
    const refused = await origin.bridge
      .serve(request(new AbortController().signal, { state: other.requestState, responses: { 'elicitation-1': { action: 'accept' } } }), target, client(), () => Promise.reject(new Error('not here')))
      .catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: -32602, message: 'Invalid or expired requestState' });
    await beyondKeepAlives();
    expect(round.work.signal?.aborted).toBe(false);
    round.finish();
    expect(await round.answered).toEqual({ content: [{ type: 'text', text: 'worked after accept' }] });
  });

  it('cancels the work on the holder at once when the replica the retry came through closes', async () => {
    // Keep-alives a minute apart: only the word of the closing replica can end the work within the test.
    const { origin, round } = await pausedThenRetried(60_000);
    origin.bridge.stop();
    await origin.bridge.close();
    await expect.poll(() => round.work.signal?.aborted).toBe(true);
    expect(await round.answered).toMatchObject({ code: -32001, message: 'Request cancelled: the gateway process the retry came through is stopping' });
  });

  it('answers the retry with why when the replica holding the call closes mid-round', async () => {
    const { holder, round } = await pausedThenRetried(60_000);
    holder.bridge.stop();
    await holder.bridge.close();
    expect(round.work.signal?.aborted).toBe(true);
    expect(await round.answered).toMatchObject({ code: -32001, message: 'Request cancelled: the gateway process holding the paused call is stopping' });
  });
});
