/**
 * The session a connection holds, with real SDK clients connected over the SDK's in-memory
 * transport pair: a 2025 SDK server, and a scripted 2026-07-28 end (the SDK server serves that
 * revision per HTTP request only).
 */
import { Client, InMemoryTransport, SERVER_INFO_META_KEY } from '@modelcontextprotocol/client';
import { Server } from '@modelcontextprotocol/server';
import { afterEach, describe, expect, it } from 'vitest';
import { MODERN_PROTOCOL_VERSION, SPOKEN_PROTOCOL_VERSIONS } from '../../src/upstream/era-negotiation.js';
import { HeldSession } from '../../src/upstream/held-session.js';
import type { OpenedClient } from '../../src/upstream/open-transport.js';
import { withTaskHandle } from '../../src/upstream/task-results.js';

const opened: { close(): Promise<void> }[] = [];

afterEach(async () => {
  await Promise.all(opened.splice(0).map((party) => party.close()));
});

const INSTRUCTIONS = 'Call search before fetch.';

/** A session as `openClient` returns it, over `wire`, to a 2025 server or a 2026-07-28 one. */
async function openedSession(era: 'legacy' | 'modern', wire: OpenedClient['wire'] = 'streamable-http'): Promise<OpenedClient> {
  const [clientEnd, serverEnd] = InMemoryTransport.createLinkedPair();
  if (era === 'legacy') {
    const server = new Server({ name: 'held', version: '1.0.0' }, { capabilities: { tools: {}, logging: {} }, instructions: INSTRUCTIONS });
    await server.connect(serverEnd);
    opened.push(server);
  } else {
    serverEnd.onmessage = (message) => {
      if (!('method' in message) || !('id' in message)) return;
      const result =
        message.method === 'server/discover'
          ? { resultType: 'complete', supportedVersions: [MODERN_PROTOCOL_VERSION], capabilities: { tools: {} }, _meta: { [SERVER_INFO_META_KEY]: { name: 'held', version: '1.0.0' } } }
          : { resultType: 'task', taskId: 'task-7', status: 'working' };
      setImmediate(() => void serverEnd.send({ jsonrpc: '2.0', id: message.id, result }));
    };
  }
  const client = new Client({ name: 'held-test', version: '1.0.0' }, { capabilities: {}, supportedProtocolVersions: [...SPOKEN_PROTOCOL_VERSIONS], versionNegotiation: { mode: 'auto' } });
  await client.connect(clientEnd);
  opened.push(client);
  const version = client.getNegotiatedProtocolVersion() ?? '';
  return { client, transport: clientEnd, wire, protocol: { era, version }, verdict: { kind: 'legacy' }, learned: false };
}

describe('held session', () => {
  it('holds a session from take to release, and still tells its wire, protocol and capabilities after', async () => {
    const session = new HeldSession();
    expect(session.forRequests()).toBeUndefined();
    expect(session.status()).toEqual({ wire: undefined, pid: undefined, protocol: undefined });

    const first = await openedSession('legacy');
    session.take(first, () => undefined);
    expect(session.holds(first.client)).toBe(true);
    expect(session.capabilities).toEqual({ tools: {}, logging: {} });
    // Read once ready, not before: a server that is not ready has none.
    expect(session.instructions).toBeUndefined();
    session.ready();
    expect(session.instructions).toBe(INSTRUCTIONS);
    expect(session.forRequests()).toEqual({
      client: first.client,
      modern: false,
      processKey: undefined,
      protocolVersion: first.protocol.version,
      capabilities: { tools: {}, logging: {} },
    });

    expect(session.release()).toEqual({ client: first.client, transport: first.transport });
    expect(session.holds(first.client)).toBe(false);
    expect(session.client).toBeUndefined();
    expect(session.instructions).toBeUndefined();
    expect(session.forRequests()).toBeUndefined();
    expect(session.exitReason()).toBeUndefined();
    expect(session.status()).toEqual({ wire: 'streamable-http', pid: undefined, protocol: { era: 'legacy', version: first.protocol.version } });
    expect(session.capabilities).toEqual({ tools: {}, logging: {} });
    expect(session.release()).toBeUndefined();
  });

  it('gives each stdio session a process key of its own', async () => {
    const session = new HeldSession();
    const keys: (string | undefined)[] = [];
    for (let i = 0; i < 2; i++) {
      session.take(await openedSession('legacy', 'stdio'), () => undefined);
      keys.push(session.forRequests()?.processKey);
      session.release();
    }
    expect(keys[0]).toMatch(/^[\w-]{12}$/);
    expect(keys[1]).toMatch(/^[\w-]{12}$/);
    expect(keys[0]).not.toBe(keys[1]);
  });

  it('tells when the client of the session closes', async () => {
    const session = new HeldSession();
    const taken = await openedSession('legacy');
    let closed = 0;
    session.take(taken, () => closed++);
    await taken.client.close();
    expect(closed).toBe(1);
  });

  it('takes the task handle a 2026-07-28 upstream answers with through to the caller', async () => {
    const session = new HeldSession();
    const taken = await openedSession('modern');
    expect(taken.client.getProtocolEra()).toBe('modern');
    session.take(taken, () => undefined);
    expect(session.forRequests()?.modern).toBe(true);
    const result = await taken.client.request({ method: 'tools/call', params: { name: 'slow', arguments: {} } });
    expect(withTaskHandle(result as Record<string, unknown>)).toEqual({ resultType: 'task', taskId: 'task-7', status: 'working' });
  });
});
