/**
 * Behaviours of the MCP SDK that Conflux builds on although the SDK does not promise them
 * (listed at the top of src/upstream/owner-channel.ts). Each is shown with real SDK Client and
 * Server objects over the SDK's in-memory transport pair, so that an SDK upgrade that changes
 * one fails here, by name, rather than as a wrong owner or a lost answer far away.
 */
import { Client, InMemoryTransport, SERVER_INFO_META_KEY, type JSONRPCMessage, type JSONRPCRequest } from '@modelcontextprotocol/client';
import { Server } from '@modelcontextprotocol/server';
import { afterEach, describe, expect, it } from 'vitest';
import { MODERN_PROTOCOL_VERSION, SPOKEN_PROTOCOL_VERSIONS } from '../../src/upstream/era-negotiation.js';
import { OwnerChannel } from '../../src/upstream/owner-channel.js';

type Era = 'legacy' | 'modern';

/** One turn of the event loop: what the HTTP and stdio transports wait between two deliveries. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

const opened: { close(): Promise<void> }[] = [];

afterEach(async () => {
  await Promise.all(opened.splice(0).map((party) => party.close()));
});

/**
 * A client connected to a server in `era`. On 2025 the server is the SDK's own: its
 * `tools/call` runs `onCall`, and what it sends is recorded in `serverSent`. The SDK server
 * serves 2026-07-28 per HTTP request only, not on a long-lived channel like this one, so the
 * 2026 end is scripted: it answers `server/discover` and any request with an empty result.
 */
async function connected(era: Era, onCall: (request: { params: { name: string } }, ctx: { mcpReq: { id: unknown; signal: AbortSignal } }) => Promise<unknown> = async () => ({ content: [] })) {
  const [clientEnd, serverEnd] = InMemoryTransport.createLinkedPair();
  const serverSent: JSONRPCMessage[] = [];
  if (era === 'legacy') {
    const server = new Server({ name: 'contract-server', version: '1.0.0' }, { capabilities: { tools: {}, logging: {} } });
    server.setRequestHandler('tools/call', onCall as never);
    await server.connect(serverEnd);
    const serverSend = serverEnd.send.bind(serverEnd);
    serverEnd.send = (message, options) => {
      serverSent.push(message);
      return serverSend(message, options);
    };
    opened.push(server);
  } else {
    serverEnd.onmessage = (message) => {
      if (!('method' in message) || !('id' in message)) return;
      const result = message.method === 'server/discover' ? MODERN_DISCOVERY : { content: [], resultType: 'complete' };
      setImmediate(() => void serverEnd.send({ jsonrpc: '2.0', id: message.id, result }));
    };
  }
  // As upstream-client.ts builds it: every version Conflux speaks, the 2026 probe first.
  const client = new Client(
    { name: 'contract-client', version: '1.0.0' },
    { capabilities: { roots: {} }, supportedProtocolVersions: [...SPOKEN_PROTOCOL_VERSIONS], versionNegotiation: { mode: 'auto' } },
  );
  await client.connect(clientEnd);
  opened.push(client);
  return { client, clientEnd, serverEnd, serverSent };
}

const MODERN_DISCOVERY = {
  resultType: 'complete',
  supportedVersions: [MODERN_PROTOCOL_VERSION],
  capabilities: { tools: {}, logging: {} },
  _meta: { [SERVER_INFO_META_KEY]: { name: 'contract-server', version: '1.0.0' } },
};

const callWork = (client: Client, options?: { onprogress?: (progress: { progress: number }) => void; timeout?: number }) =>
  client.request({ method: 'tools/call', params: { name: 'work', arguments: {} } }, options ?? {});

describe.each<Era>(['legacy', 'modern'])('the SDK client on a %s connection', (era) => {
  it('calls transport.send synchronously within request(), which is how OwnerChannel hands a request its owner', async () => {
    const { client, clientEnd } = await connected(era);
    expect(client.getProtocolEra()).toBe(era);
    const owners = new OwnerChannel();
    const taken: unknown[] = [];
    const send = clientEnd.send.bind(clientEnd);
    clientEnd.send = (message, options) => {
      taken.push(owners.take());
      return send(message, options);
    };
    await owners.offer('the call of client 7', () => callWork(client));
    expect(taken).toEqual(['the call of client 7']);
  });

  it('fails a request with the error its transport.send rejects with, however late (how a transport reports an answer that never came)', async () => {
    const { client, clientEnd } = await connected(era);
    const failure = new Error('the response stream ended without an answer');
    clientEnd.send = async () => {
      await nextTurn();
      await nextTurn();
      throw failure;
    };
    await expect(callWork(client, { timeout: 600_000 })).rejects.toBe(failure);
  });

  it('runs a delivered notification’s handler before the next turn of the event loop, so the owner set for it is still the one it reads', async () => {
    const { client, clientEnd } = await connected(era);
    const owners = new OwnerChannel();
    const seen: unknown[][] = [];
    client.setNotificationHandler('notifications/message', (notification) => void seen.push([notification.params.data, owners.delivering]));
    for (const [data, owner] of [
      ['first', 'owner A'],
      ['second', 'owner B'],
    ]) {
      owners.delivering = owner;
      clientEnd.onmessage?.({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data } });
      await nextTurn();
    }
    expect(seen).toEqual([
      ['first', 'owner A'],
      ['second', 'owner B'],
    ]);
  });

  it('handles a progress notification delivered one turn before the answer, before the answer settles its request', async () => {
    const { client, clientEnd } = await connected(era);
    let sent: JSONRPCRequest | undefined;
    clientEnd.send = async (message) => {
      sent = message as JSONRPCRequest;
    };
    const progress: number[] = [];
    const pending = callWork(client, { onprogress: ({ progress: value }) => void progress.push(value) });
    const token = (sent?.params?._meta as { progressToken?: string | number } | undefined)?.progressToken;
    expect(token).toBeDefined();
    clientEnd.onmessage?.({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: token!, progress: 1, total: 1 } });
    await nextTurn();
    clientEnd.onmessage?.({ jsonrpc: '2.0', id: sent!.id, result: era === 'modern' ? { content: [], resultType: 'complete' } : { content: [] } });
    await pending;
    expect(progress).toEqual([1]);
  });
});

describe('the SDK client on a 2025 connection', () => {
  it('runs a delivered server request’s handler before the next turn, with the owner set for it', async () => {
    const { client, clientEnd } = await connected('legacy');
    const owners = new OwnerChannel();
    const seen: unknown[] = [];
    client.setRequestHandler('roots/list', () => {
      seen.push(owners.delivering);
      return { roots: [] };
    });
    for (const [id, owner] of [
      ['server-1', 'owner C'],
      ['server-2', 'owner D'],
    ]) {
      owners.delivering = owner;
      clientEnd.onmessage?.({ jsonrpc: '2.0', id: id!, method: 'roots/list' });
      await nextTurn();
    }
    expect(seen).toEqual(['owner C', 'owner D']);
  });

  it('numbers its next request from _requestMessageId, counted up per request (how direct-request.ts shares its sequence)', async () => {
    const { client, clientEnd } = await connected('legacy');
    const ids: unknown[] = [];
    const send = clientEnd.send.bind(clientEnd);
    clientEnd.send = (message, options) => {
      if ('id' in message) ids.push(message.id);
      return send(message, options);
    };
    const counter = client as unknown as { _requestMessageId: number };
    const next = counter._requestMessageId;
    expect(typeof next).toBe('number');
    await callWork(client);
    counter._requestMessageId++; // a request sent past the client takes a number
    await callWork(client);
    expect(ids).toEqual([next, next + 2]);
    expect(counter._requestMessageId).toBe(next + 3);
  });
});

describe('the SDK server on a 2025 session', () => {
  it('stops a request’s handler on a notifications/cancelled fed to transport.onmessage, and sends no answer for it', async () => {
    let started: unknown;
    let reason: unknown;
    const { client, serverEnd, serverSent } = await connected('legacy', async (_request, ctx) => {
      started = ctx.mcpReq.id;
      await new Promise((resolve) => ctx.mcpReq.signal.addEventListener('abort', resolve, { once: true }));
      reason = ctx.mcpReq.signal.reason;
      return { content: [{ type: 'text', text: 'an answer nobody waits for' }] };
    });
    const pending = callWork(client).catch((error: Error) => error);
    while (started === undefined) await nextTurn();
    serverEnd.onmessage?.({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: started as number, reason: 'session closed' } });
    while (reason === undefined) await nextTurn();
    for (let i = 0; i < 5; i++) await nextTurn();
    expect(String(reason)).toContain('session closed');
    expect(serverSent.filter((message) => 'id' in message && message.id === started)).toEqual([]);
    await client.close();
    expect(await pending).toBeInstanceOf(Error);
  });
});
