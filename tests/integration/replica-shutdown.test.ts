import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { MemoryHub, MemorySharedState } from '../../src/state/memory-state.js';
import { capturedLog } from '../helpers/captured-log.js';
import { openSession, startGateway, stdioFixture, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';
import { modernRequest, type RpcMessage } from '../helpers/modern-request.js';

/**
 * Two gateway processes (in this process, on one MemoryHub) serving each other over the replica
 * bus, while one of them stops: what the other one's clients get during the drain and after.
 */

const connect = (url: string) => openSession(new Client({ name: 'ann', version: '1.0.0' }), new StreamableHTTPClientTransport(new URL(url)));

describe('a processes: one server whose gateway process stops', () => {
  it("serves the other gateway's requests through the grace period of a drain, and again once the process moved", async () => {
    const hub = new MemoryHub();
    const config = testConfig({ solo: stdioFixture('solo', { env: { LOG_TOOLS: '1' }, processes: 'one' }) });
    const gateways: RunningGateway[] = [];
    const peers: Awaited<ReturnType<typeof connect>>[] = [];
    try {
      for (let i = 0; i < 2; i++) gateways.push(await startGateway(config, { state: new MemorySharedState(hub) }));
      const [first, second] = gateways as [RunningGateway, RunningGateway];
      for (const g of gateways) peers.push(await connect(g.url));
      const [onFirst, onSecond] = peers as [Awaited<ReturnType<typeof connect>>, Awaited<ReturnType<typeof connect>>];
      const solo = second.conflux.upstreams.get('solo')!;
      expect(solo.status().owner).toBe(first.conflux.state.replicaId);

      // A call of the first gateway's own client keeps it draining (for up to its grace period).
      const working = new AbortController();
      const work = onFirst.client.callTool({ name: 'solo__work', arguments: {} }, { signal: working.signal }).catch((error: unknown) => error);
      await waitFor(async () => textOf(await onSecond.client.callTool({ name: 'solo__work_status', arguments: {} })) === 'running', 10_000, 'the work to start');
      const stopping = first.stop();
      // Nobody else may run the server before the lease is let go: the holder serves on meanwhile.
      expect(textOf(await onSecond.client.callTool({ name: 'solo__echo', arguments: { text: 'during the drain' } }))).toBe('solo: during the drain');

      working.abort('enough');
      await work;
      await stopping;
      await waitFor(() => solo.status().owner === 'here' && solo.state === 'ready', 20_000, 'the second gateway to run the server');
      expect(textOf(await onSecond.client.callTool({ name: 'solo__echo', arguments: { text: 'tried again' } }))).toBe('solo: tried again');
    } finally {
      for (const p of peers) await p.close().catch(() => {});
      for (const g of gateways) await g.stop();
    }
  }, 60_000);
});

interface LogLine {
  msg: string;
  origin?: string;
  reason?: string;
}

describe('a paused call retried through a gateway process that stops', () => {
  it('is cancelled on the process holding it as soon as the other has drained, saying why', async () => {
    const hub = new MemoryHub();
    // A second of grace: the retry in flight through the stopping process is waited for that long.
    const config: Config = testConfig(
      { alpha: stdioFixture('alpha', { env: { ASK_TOOLS: '1' } }) },
      { auth: { trustedHeaders: { proxies: ['127.0.0.0/8', '::1'] } }, access: { defaultLevel: 'call' }, shutdownGraceSeconds: 1 },
    );
    const { logger, lines } = capturedLog<LogLine>();
    const gateways: RunningGateway[] = [];
    try {
      const holder = await startGateway(config, { logger, state: new MemorySharedState(hub) });
      gateways.push(holder);
      const through = await startGateway(config, { state: new MemorySharedState(hub) });
      gateways.push(through);
      const options = { capabilities: { elicitation: { form: {} } }, headers: { 'x-user-email': 'ann@example.com' } };
      const call = async (url: string, params: Record<string, unknown>): Promise<RpcMessage> => (await modernRequest(url, 'tools/call', params, options)).answer;
      const status = async () => textOf((await call(holder.url, { name: 'alpha__ask_status', arguments: {} })).result ?? {});

      const asked = await call(holder.url, { name: 'alpha__ask_then_work', arguments: {} });
      expect(asked.result?.resultType).toBe('input_required');
      const retry = call(through.url, {
        name: 'alpha__ask_then_work',
        arguments: {},
        inputResponses: { 'elicitation-1': { action: 'accept', content: { name: 'ann' } } },
        requestState: asked.result?.requestState,
      }).catch((error: unknown) => error);
      await waitFor(async () => (await status()) === 'working after accept ann', 10_000, 'the upstream on the holder to take the answer');

      await through.stop();
      await retry;
      await waitFor(async () => (await status()) === 'cancelled while working after accept ann', 10_000, 'the upstream call to be cancelled');
      const cancelled = lines.filter((l) => l.msg === 'a round forwarded from another replica was cancelled there');
      expect(cancelled).toEqual([expect.objectContaining({ origin: through.conflux.state.replicaId, reason: 'the gateway process the retry came through is stopping' })]);
      expect(holder.conflux.inputRounds.paused).toBe(0);
    } finally {
      for (const g of gateways.reverse()) await g.stop();
    }
  }, 60_000);
});
