import { ProtocolError } from '@modelcontextprotocol/server';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { OutboundMessage } from '../../src/gateway/downstream-call.js';
import { WireMcpError } from '../../src/gateway/error-mapping.js';
import { PausedCallForwarding, type ForwardedRetry, type RoundChannel } from '../../src/gateway/paused-call-forwarding.js';
import { silentLogger } from '../../src/observability/logger.js';
import { BusRpc } from '../../src/state/bus-rpc.js';
import { MemoryHub, MemorySharedState } from '../../src/state/memory-state.js';

/**
 * Retries forwarded between two replicas on one MemoryHub: `origin` received the retry, `holder`
 * holds the paused call. The holder's side is given a `resume` standing in for the bridge.
 */
const closers: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const close of closers.splice(0).reverse()) await close();
});

function replica(hub: MemoryHub, keepAliveMs?: number) {
  const state = new MemorySharedState(hub);
  const rpc = new BusRpc(state.bus, silentLogger());
  const forwarding = new PausedCallForwarding({ rpc, logger: silentLogger(), keepAliveMs });
  closers.push(async () => {
    await forwarding.close();
    rpc.close();
  });
  return { id: state.replicaId, rpc, forwarding };
}

function replicas(keepAliveMs?: number) {
  const hub = new MemoryHub();
  return { origin: replica(hub, keepAliveMs), holder: replica(hub, keepAliveMs) };
}

const retry: ForwardedRetry = { state: 'conflux.paused.v1.x.y.holder', method: 'tools/call', target: 'alpha__ask', principal: 'ann', caller: 'principal:ann', progressToken: 7, inputResponses: { 'elicitation-1': { action: 'accept' } } };

function channel(): RoundChannel & { heard: OutboundMessage[]; leave(reason: string): void } {
  const controller = new AbortController();
  const heard: OutboundMessage[] = [];
  return { signal: controller.signal, heard, notify: async (n) => void heard.push(n), leave: (reason) => controller.abort(reason) };
}

/** A round the holder serves until it is cancelled: `cancelled` is the reason it was given. */
function serveUntilCancelled(holder: ReturnType<typeof replica>) {
  const seen: { started: Promise<void>; cancelled: unknown } = { started: Promise.resolve(), cancelled: undefined };
  let started = () => {};
  seen.started = new Promise<void>((resolve) => (started = resolve));
  holder.forwarding.serve(
    (_retry, round) =>
      new Promise((_resolve, reject) => {
        round.signal.addEventListener('abort', () => reject((seen.cancelled = round.signal.reason)), { once: true });
        started();
      }),
  );
  return seen;
}

describe('a retry forwarded to the replica holding its call', () => {
  it("is served there with the caller's principal, and its notifications arrive in order before the answer", async () => {
    const { origin, holder } = replicas();
    const served: ForwardedRetry[] = [];
    holder.forwarding.serve(async (forwarded, round) => {
      served.push(forwarded);
      await round.notify({ method: 'notifications/progress', params: { progressToken: 7, progress: 1 } });
      await round.notify({ method: 'notifications/message', params: { level: 'info', data: 'halfway' } });
      return { content: [{ type: 'text', text: 'done' }] };
    });
    const client = channel();
    const result = await origin.forwarding.forward(holder.id, retry, client);
    expect(result).toEqual({ content: [{ type: 'text', text: 'done' }] });
    expect(served).toEqual([retry]);
    expect(client.heard).toEqual([
      { method: 'notifications/progress', params: { progressToken: 7, progress: 1 } },
      { method: 'notifications/message', params: { level: 'info', data: 'halfway' } },
    ]);
  });

  it("answers with the holder's JSON-RPC error as it was, and an unexpected one as an incident", async () => {
    const { origin, holder } = replicas();
    let failure: unknown = new WireMcpError(-32602, 'inputResponses has no answer for "sampling-1"', { missing: ['sampling-1'] });
    holder.forwarding.serve(async () => {
      throw failure;
    });
    const refused = await origin.forwarding.forward(holder.id, retry, channel()).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ProtocolError);
    expect(refused).toMatchObject({ code: -32602, message: 'inputResponses has no answer for "sampling-1"', data: { missing: ['sampling-1'] } });
    failure = new TypeError('x is undefined');
    const broken = await origin.forwarding.forward(holder.id, retry, channel()).catch((error: unknown) => error);
    expect(broken).toMatchObject({ code: -32603, message: expect.stringMatching(/^Internal error \(incident [0-9a-f-]+\)$/) });
  });

  it('is refused as an unknown state when nobody holds the replica named, or it serves no paused calls', async () => {
    const { origin, holder } = replicas();
    const gone = await origin.forwarding.forward('no-such-replica', retry, channel()).catch((error: unknown) => error);
    expect(gone).toMatchObject({ code: -32602, message: 'Invalid or expired requestState', data: { reason: 'invalid_request_state' } });
    // The holder is on the bus but serves nothing: its "nothing serves this" is the same answer.
    const unserved = await origin.forwarding.forward(holder.id, retry, channel()).catch((error: unknown) => error);
    expect(unserved).toMatchObject({ code: -32602, message: 'Invalid or expired requestState' });
  });

  it('tells the holder when its client leaves, and rejects with the reason', async () => {
    const { origin, holder } = replicas();
    const round = serveUntilCancelled(holder);
    const client = channel();
    const forwarded = origin.forwarding.forward(holder.id, retry, client).catch((error: unknown) => error);
    await round.started;
    client.leave('the client went away');
    expect(await forwarded).toBe('the client went away');
    await expect.poll(() => round.cancelled).toBe('the client cancelled the request or went away');
  });

  it('gives up a holder that goes quiet mid-round, with the answer for an unknown state', async () => {
    const { origin, holder } = replicas(20);
    // Served by hand: it takes the request and never says a word again (a replica that froze).
    holder.rpc.serve('paused-call.resume', () => new Promise(() => {}));
    const silent = await origin.forwarding.forward(holder.id, retry, channel()).catch((error: unknown) => error);
    expect(silent).toMatchObject({ code: -32602, message: 'Invalid or expired requestState' });
  });

  it('keeps a long round alive, and cancels it on the holder once the replica the retry came through is gone', async () => {
    const { origin, holder } = replicas(20);
    let cancelled: unknown;
    let beats = 0;
    holder.forwarding.serve(
      (_retry, round) =>
        new Promise((resolve, reject) => {
          round.signal.addEventListener('abort', () => reject((cancelled = round.signal.reason)), { once: true });
          // Longer than three keep-alive periods: the origin must not give up meanwhile.
          const timer = setInterval(() => {
            if (++beats === 10) {
              clearInterval(timer);
              resolve({ content: [] });
            }
          }, 20);
        }),
    );
    expect(await origin.forwarding.forward(holder.id, retry, channel())).toEqual({ content: [] });

    beats = 0;
    holder.forwarding.serve(
      (_retry, round) =>
        new Promise((_resolve, reject) => {
          round.signal.addEventListener('abort', () => reject((cancelled = round.signal.reason)), { once: true });
          // The replica the retry came through dies while the round runs, without a word.
          origin.rpc.close();
        }),
    );
    const lost = await origin.forwarding.forward(holder.id, retry, channel()).catch((error: unknown) => error);
    expect(lost).toMatchObject({ code: -32602 });
    await expect.poll(() => cancelled, { timeout: 5_000 }).toBe('the replica the retry came through is gone');
  });
});

describe('paused-call rounds across replicas, as one of them stops', () => {
  /** A round forwarded from `origin` that `holder` serves until it is cancelled, once it has started. */
  async function roundUnderWay() {
    // Keep-alives far apart: only a message can end the round within the test.
    const { origin, holder } = replicas(60_000);
    const round = serveUntilCancelled(holder);
    const forwarded = origin.forwarding.forward(holder.id, retry, channel()).catch((error: unknown) => error);
    await round.started;
    return { origin, holder, round, forwarded };
  }

  it('tells the holder of a round forwarded from a replica that closes, which cancels it at once, with why', async () => {
    const { origin, round, forwarded } = await roundUnderWay();
    await origin.forwarding.close();
    await expect.poll(() => round.cancelled).toBe('the gateway process the retry came through is stopping');
    // Its bus still open, the origin hears the holder's answer: the round was cancelled, and why.
    expect(await forwarded).toMatchObject({ code: -32001, message: 'Request cancelled: the gateway process the retry came through is stopping' });
  });

  it('answers a round cut short by its holder closing with the reason, as a cancelled request', async () => {
    const { holder, round, forwarded } = await roundUnderWay();
    await holder.forwarding.close();
    expect(round.cancelled).toBe('the gateway process holding the paused call is stopping');
    expect(await forwarded).toMatchObject({ code: -32001, message: 'Request cancelled: the gateway process holding the paused call is stopping' });
  });

  it('gives a served round up only when two keep-alives in a row find nobody on the replica it came through', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    const hub = new MemoryHub();
    const holder = replica(hub, 1000);
    const round = serveUntilCancelled(holder);
    // The replica the retry comes through, by hand: its subscription can lapse and come back.
    const originBus = hub.busFor('origin-1');
    const originRpc = new BusRpc(originBus, silentLogger());
    void originRpc.call(holder.id, 'paused-call.resume', { forward: 'f-1', retry }, { timeoutMs: 600_000 }).catch(() => {});
    await round.started;
    originRpc.close();
    await vi.advanceTimersByTimeAsync(1000);
    expect(round.cancelled).toBeUndefined();
    // Back for one beat: the count starts again.
    const back = originBus.onMessage(() => {});
    await vi.advanceTimersByTimeAsync(1000);
    back();
    await vi.advanceTimersByTimeAsync(1000);
    expect(round.cancelled).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1000);
    expect(round.cancelled).toBe('the replica the retry came through is gone');
  });
});
