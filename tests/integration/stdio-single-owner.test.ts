import { randomUUID } from 'node:crypto';
import { Client, StreamableHTTPClientTransport, type LoggingMessageNotificationParams } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryHub, MemorySharedState } from '../../src/state/memory-state.js';
import type { SharedState } from '../../src/state/shared-state.js';
import { isAlive, startGateway as startOn, stdioFixture, testConfig, textOf, waitFor, type RunningGateway as Gateway } from '../helpers/gateway.js';
import { newRedis, redisAvailable, testSharedState } from '../helpers/redis.js';

/**
 * Two gateway processes (in this process) sharing their state, with a stdio server that runs
 * once for both (`processes: one`): the gateway that started first holds its lease and runs its
 * process, the other sends it every request over the replica bus.
 */
const startGateway = (config: ReturnType<typeof testConfig>, state: SharedState) => startOn(config, { state });
const soloConfig = (processes?: 'one' | 'per_worker') => testConfig({ solo: stdioFixture('solo', { env: { LOG_TOOLS: '1' }, ...(processes ? { processes } : {}) }) });

interface Peer {
  client: Client;
  logs: LoggingMessageNotificationParams[];
  updates: string[];
  close(): Promise<void>;
}

/** The SDK client, answering sampling and elicitation as `ann`, collecting logs and resource updates. */
async function connectPeer(url: string): Promise<Peer> {
  const client = new Client({ name: 'ann', version: '1.0.0' }, { capabilities: { sampling: {}, elicitation: {} } });
  client.setRequestHandler('sampling/createMessage', async (request) => {
    const question = (request.params.messages[0]!.content as { text: string }).text;
    return { role: 'assistant', model: 'test', content: { type: 'text', text: `ann answers ${question}` } };
  });
  client.setRequestHandler('elicitation/create', (async () => ({ action: 'accept', content: { name: 'Ada' } })) as never);
  const logs: LoggingMessageNotificationParams[] = [];
  const updates: string[] = [];
  client.setNotificationHandler('notifications/message', (n) => void logs.push(n.params));
  client.setNotificationHandler('notifications/resources/updated', (n) => void updates.push(n.params.uri));
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);
  return {
    client,
    logs,
    updates,
    close: async () => {
      await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}

const call = async (peer: Peer, name: string, args: Record<string, unknown> = {}) => textOf(await peer.client.callTool({ name, arguments: args }));

describe('a processes: one stdio server under two gateways (memory)', () => {
  const hub = new MemoryHub();
  let first: Gateway;
  let second: Gateway;
  let onFirst: Peer;
  let onSecond: Peer;

  beforeAll(async () => {
    first = await startGateway(soloConfig('one'), new MemorySharedState(hub));
    second = await startGateway(soloConfig('one'), new MemorySharedState(hub));
    onFirst = await connectPeer(first.url);
    onSecond = await connectPeer(second.url);
  });
  afterAll(async () => {
    await onFirst?.close();
    await onSecond?.close();
    await first?.stop();
    await second?.stop();
  });

  it('runs one process: the gateway that started first runs it, the other says where it runs', async () => {
    const statuses = [first, second].map((g) => g.conflux.upstreams.get('solo')!.status());
    expect(statuses.map((s) => s.owner)).toEqual(['here', first.conflux.state.replicaId]);
    expect(statuses.map((s) => s.state)).toEqual(['ready', 'ready']);
    const pid = statuses[0]!.pid!;
    expect(isAlive(pid)).toBe(true);
    // The other's status is the holder's: the same process.
    expect(statuses[1]!.pid).toBe(pid);
    for (let i = 0; i < 3; i++) {
      expect(Number(await call(onFirst, 'solo__pid'))).toBe(pid);
      expect(Number(await call(onSecond, 'solo__pid'))).toBe(pid);
    }
    // Both list the server's tools, the second from what the first told it.
    const names = (await onSecond.client.listTools()).tools.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['solo__echo', 'solo__count', 'solo__ask_llm', 'solo__log_later']));
    expect(names).toEqual((await onFirst.client.listTools()).tools.map((t) => t.name));
  });

  it("answers a call through the other gateway with the process's result, its progress, and what the process asks that gateway's client", async () => {
    expect(await call(onSecond, 'solo__echo', { text: 'through the bus' })).toBe('solo: through the bus');
    const seen: number[] = [];
    const counted = await onSecond.client.callTool({ name: 'solo__count', arguments: { n: 3 } }, { onprogress: (p) => void seen.push(p.progress) });
    expect(textOf(counted)).toBe('solo counted to 3');
    expect(seen).toEqual([1, 2, 3]);
    expect(await call(onSecond, 'solo__ask_llm', { question: 'why?' })).toBe('solo heard: ann answers why?');
    expect(await call(onSecond, 'solo__ask_user')).toBe('solo: accept Ada');
    // The holder's own client is asked through its own calls, as ever.
    expect(await call(onFirst, 'solo__ask_llm', { question: 'here?' })).toBe('solo heard: ann answers here?');
  });

  it('passes an upstream JSON-RPC error through the other gateway with its code', async () => {
    const failure = await onSecond.client.getPrompt({ name: 'solo__greet', arguments: {} }).then(
      () => undefined,
      (error: unknown) => error as { code?: number; message: string },
    );
    expect(failure?.code).toBe(-32602);
    expect(failure!.message).toMatch(/name/);
  });

  it("relays a call's log messages to its own client at its level, and those about no call to every gateway's sessions once", async () => {
    await onSecond.client.setLoggingLevel('info');
    onSecond.logs.length = 0;
    expect(await call(onSecond, 'solo__log', { text: 'caused' })).toBe('logged');
    await waitFor(() => onSecond.logs.length >= 2, 10_000, 'the log messages of the call');
    expect(onSecond.logs.map((l) => l.data)).toEqual(['solo info: caused', 'solo error: caused']);
    expect(onSecond.logs.every((l) => l.logger === 'solo/demo')).toBe(true);
    expect(onFirst.logs).toEqual([]);

    await onFirst.client.setLoggingLevel('error');
    onSecond.logs.length = 0;
    expect(await call(onSecond, 'solo__log_later', { text: 'alone', ms: 50 })).toBe('scheduled');
    await waitFor(() => onSecond.logs.length >= 2 && onFirst.logs.length >= 1, 10_000, 'the background log lines on both gateways');
    await new Promise((r) => setTimeout(r, 200));
    expect(onSecond.logs.map((l) => l.data)).toEqual(['solo background info: alone', 'solo background error: alone']);
    expect(onFirst.logs.map((l) => l.data)).toEqual(['solo background error: alone']);
  });

  it('sends resource updates to the sessions subscribed through either gateway', async () => {
    await onSecond.client.subscribeResource({ uri: 'demo://solo/static' });
    await onFirst.client.subscribeResource({ uri: 'demo://solo/static' });
    expect(await call(onSecond, 'solo__touch', { uri: 'demo://solo/static' })).toBe('notified');
    await waitFor(() => onSecond.updates.length >= 1 && onFirst.updates.length >= 1, 10_000, 'the resource update on both gateways');
    // One gateway's last unsubscribe leaves the other's subscription on the process.
    await onFirst.client.unsubscribeResource({ uri: 'demo://solo/static' });
    expect(await call(onFirst, 'solo__touch', { uri: 'demo://solo/static' })).toBe('notified');
    await waitFor(() => onSecond.updates.length >= 2, 10_000, 'the second update');
    expect(onSecond.updates).toEqual(['demo://solo/static', 'demo://solo/static']);
    expect(onFirst.updates).toEqual(['demo://solo/static']);
    await onSecond.client.unsubscribeResource({ uri: 'demo://solo/static' });
    expect(await call(onSecond, 'solo__touch', { uri: 'demo://solo/static' })).toBe('not subscribed');
  });

  it('cancels the request on the process when the client cancels through the other gateway', async () => {
    const controller = new AbortController();
    const working = onSecond.client.callTool({ name: 'solo__work', arguments: {} }, { signal: controller.signal }).catch((error: unknown) => error);
    await waitFor(async () => (await call(onFirst, 'solo__work_status')) === 'running', 10_000, 'the work to start');
    controller.abort('enough');
    await working;
    await waitFor(async () => (await call(onFirst, 'solo__work_status')) === 'cancelled', 10_000, 'the work to be cancelled');
  });

  it('moves the process to the other gateway when the one running it stops', async () => {
    const before = first.conflux.upstreams.get('solo')!.status().pid!;
    await onFirst.close();
    await first.stop();
    expect(isAlive(before)).toBe(false);
    const solo = second.conflux.upstreams.get('solo')!;
    await waitFor(() => solo.status().owner === 'here' && solo.state === 'ready', 20_000, 'the second gateway to run the server');
    const after = Number(await call(onSecond, 'solo__pid'));
    expect(after).not.toBe(before);
    expect(after).toBe(solo.status().pid);
    expect(await call(onSecond, 'solo__ask_llm', { question: 'still there?' })).toBe('solo heard: ann answers still there?');
  });
});

describe('stdio servers under two gateways, one process each (per_worker, the default)', () => {
  it('spawns one process per gateway, and a lone gateway runs a processes: one server itself at once', async () => {
    const hub = new MemoryHub();
    const gateways: Gateway[] = [];
    const peers: Peer[] = [];
    try {
      for (let i = 0; i < 2; i++) gateways.push(await startGateway(soloConfig(), new MemorySharedState(hub)));
      for (const g of gateways) peers.push(await connectPeer(g.url));
      const pids = await Promise.all(peers.map(async (p) => Number(await call(p, 'solo__pid'))));
      expect(pids[0]).not.toBe(pids[1]);
      expect(gateways.map((g) => g.conflux.upstreams.get('solo')!.status().pid)).toEqual(pids);
      expect(gateways.map((g) => g.conflux.upstreams.get('solo')!.status().owner)).toEqual([undefined, undefined]);

      // Its own memory state, nobody else: it holds the lease from the start.
      gateways.push(await startGateway(soloConfig('one'), new MemorySharedState()));
      const alone = gateways[2]!;
      expect(alone.conflux.upstreams.get('solo')!.status()).toMatchObject({ owner: 'here', state: 'ready' });
      peers.push(await connectPeer(alone.url));
      expect(await call(peers[2]!, 'solo__echo', { text: 'alone' })).toBe('solo: alone');
    } finally {
      for (const p of peers) await p.close();
      for (const g of gateways) await g.stop();
    }
  });
});

describe.runIf(await redisAvailable())('a processes: one stdio server under two gateways (redis)', () => {
  it('runs one process for both and serves the other gateway through Redis, progress and sampling included', async () => {
    const redis = newRedis();
    const keyPrefix = `test-single-owner-${randomUUID()}:`;
    const gateways: Gateway[] = [];
    const peers: Peer[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const state = testSharedState(redis, keyPrefix);
        await state.bus.subscribed();
        gateways.push(await startGateway(soloConfig('one'), state));
      }
      const [first, second] = gateways as [Gateway, Gateway];
      const solo = second.conflux.upstreams.get('solo')!;
      await waitFor(() => solo.state === 'ready', 15_000, 'the view of the holder');
      expect([first, second].map((g) => g.conflux.upstreams.get('solo')!.status().owner)).toEqual(['here', first.conflux.state.replicaId]);
      for (const g of gateways) peers.push(await connectPeer(g.url));
      const pids = await Promise.all(peers.map(async (p) => Number(await call(p, 'solo__pid'))));
      expect(pids[1]).toBe(pids[0]);
      expect(first.conflux.upstreams.get('solo')!.status().pid).toBe(pids[0]);
      const seen: number[] = [];
      const counted = await peers[1]!.client.callTool({ name: 'solo__count', arguments: { n: 3 } }, { onprogress: (p) => void seen.push(p.progress) });
      expect(textOf(counted)).toBe('solo counted to 3');
      expect(seen).toEqual([1, 2, 3]);
      expect(await call(peers[1]!, 'solo__ask_llm', { question: 'over redis?' })).toBe('solo heard: ann answers over redis?');
    } finally {
      for (const p of peers) await p.close();
      for (const g of gateways) await g.stop();
      const keys = await redis.keys(`${keyPrefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    }
  });
});
