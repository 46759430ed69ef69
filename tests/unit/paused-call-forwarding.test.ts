import { ProtocolError } from '@modelcontextprotocol/server';
import { afterEach, describe, expect, it } from 'vitest';
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
const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0).reverse()) close();
});

function replicas(keepAliveMs?: number) {
  const hub = new MemoryHub();
  const make = () => {
    const state = new MemorySharedState(hub);
    const rpc = new BusRpc(state.bus, silentLogger());
    const forwarding = new PausedCallForwarding({ rpc, logger: silentLogger(), keepAliveMs });
    closers.push(() => {
      forwarding.close();
      rpc.close();
    });
    return { id: state.replicaId, rpc, forwarding };
  };
  return { origin: make(), holder: make() };
}

const retry: ForwardedRetry = { state: 'conflux.paused.v1.x.y.holder', method: 'tools/call', target: 'alpha__ask', principal: 'ann', caller: 'principal:ann', progressToken: 7, inputResponses: { 'elicitation-1': { action: 'accept' } } };

function channel(): RoundChannel & { heard: OutboundMessage[]; leave(reason: string): void } {
  const controller = new AbortController();
  const heard: OutboundMessage[] = [];
  return { signal: controller.signal, heard, notify: async (n) => void heard.push(n), leave: (reason) => controller.abort(reason) };
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
    let started = () => {};
    const running = new Promise<void>((resolve) => (started = resolve));
    let cancelled: unknown;
    holder.forwarding.serve(
      (_retry, round) =>
        new Promise((_resolve, reject) => {
          round.signal.addEventListener('abort', () => reject((cancelled = round.signal.reason)), { once: true });
          started();
        }),
    );
    const client = channel();
    const forwarded = origin.forwarding.forward(holder.id, retry, client).catch((error: unknown) => error);
    await running;
    client.leave('the client went away');
    expect(await forwarded).toBe('the client went away');
    await expect.poll(() => cancelled).toBe('the client cancelled the request or went away');
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
          // The replica the retry came through stops while the round runs.
          origin.forwarding.close();
          origin.rpc.close();
        }),
    );
    const lost = await origin.forwarding.forward(holder.id, retry, channel()).catch((error: unknown) => error);
    expect(lost).toMatchObject({ code: -32602 });
    await expect.poll(() => cancelled, { timeout: 5_000 }).toBe('the replica the retry came through is gone');
  });
});
