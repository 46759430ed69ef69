import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { ResourceUpdatedNotificationSchema, SubscribeRequestSchema, UnsubscribeRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { bearer, hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { sdkClient, startGateway, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';
import { asyncRequestListener } from '../helpers/async-request-listener.js';

/**
 * An HTTP MCP server that serves each caller their own data: the user named by the bearer
 * token's `sub` gets a resource named after them, instructions naming them, and a template
 * through which each reads their own notes. `bump` reports the caller's notes as updated, on
 * the upstream session that subscribed to them only.
 */
async function startNotesUpstream(): Promise<{ url: string; sessionsOf(who: string): number; close(): Promise<void> }> {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const sessions = new Map<string, number>();
  const http = createServer(asyncRequestListener(async (req, res) => {
    const sessionId = req.headers['mcp-session-id'];
    let transport = typeof sessionId === 'string' ? transports.get(sessionId) : undefined;
    if (!transport) {
      if (sessionId) return void res.writeHead(404).end();
      const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      const who = String((JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString() || '{}') as { sub?: string }).sub ?? 'nobody');
      const created = new StreamableHTTPServerTransport({
        sessionIdGenerator: randomUUID,
        onsessioninitialized: (id) => {
          sessions.set(who, (sessions.get(who) ?? 0) + 1);
          transports.set(id, created);
        },
      });
      await notesServer(who).connect(created);
      transport = created;
    }
    await transport.handleRequest(req, res);
  }));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    sessionsOf: (who) => sessions.get(who) ?? 0,
    close: async () => {
      await Promise.all([...transports.values()].map((t) => t.close()));
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
    },
  };
}

function notesServer(who: string): McpServer {
  const server = new McpServer({ name: 'notes', version: '1.0.0' }, { capabilities: { resources: { subscribe: true } }, instructions: `Private notes server of ${who}` });
  const subscribed = new Set<string>();
  server.registerResource(`secret-notes-of-${who}`, `note://${who}`, { mimeType: 'text/plain' }, async (uri) => ({ contents: [{ uri: uri.href, text: `notes of ${who}` }] }));
  server.registerResource('note', new ResourceTemplate('note://{name}', { list: undefined }), { mimeType: 'text/plain' }, async (uri, { name }) => ({
    contents: [{ uri: uri.href, text: name === who ? `notes of ${who}` : 'none of yours' }],
  }));
  server.server.setRequestHandler(SubscribeRequestSchema, async (request) => {
    subscribed.add(request.params.uri);
    return {};
  });
  server.server.setRequestHandler(UnsubscribeRequestSchema, async (request) => {
    subscribed.delete(request.params.uri);
    return {};
  });
  server.registerTool('bump', { description: "Reports the caller's notes as updated", inputSchema: { uri: z.string() } }, async ({ uri }) => {
    const notified = subscribed.has(uri);
    if (notified) await server.server.sendResourceUpdated({ uri });
    return { content: [{ type: 'text', text: notified ? 'notified' : 'not subscribed' }] };
  });
  return server;
}

async function session(gateway: RunningGateway, sub: string): Promise<{ client: Client; close(): Promise<void> }> {
  const token = await hs256Token({ sub, email: `${sub}@example.com` }, { expiresIn: '10m' });
  return sdkClient(gateway.url, { headers: bearer(token), name: sub });
}

describe("a per-user HTTP server's entry", () => {
  let upstream: Awaited<ReturnType<typeof startNotesUpstream>>;
  let gateway: RunningGateway;

  beforeAll(async () => {
    upstream = await startNotesUpstream();
    gateway = await startGateway(
      testConfig(
        { notes: { url: upstream.url, shared: false, headers: { authorization: 'Bearer ${user.token}' } } },
        { auth: { jwt: { secret: JWT_SECRET } }, access: { defaultLevel: 'call' }, upstreamIdentity: { instances: { idleSeconds: 1, maxPerUser: 5, maxTotal: 10 } } },
      ),
    );
  }, 60_000);

  afterAll(async () => {
    await gateway?.stop();
    await upstream?.close();
  }, 60_000);

  it("hands nobody the first user's resources or instructions, only what describes the server", async () => {
    const alice = await session(gateway, 'alice');
    try {
      // Alice's session started her instance, which lists the server for everyone.
      await waitFor(() => gateway.conflux.upstreams.get('notes')!.tools.length > 0, 15_000, "alice's instance to list the server");
      const bob = await session(gateway, 'bob');
      try {
        const resources = await bob.client.listResources();
        const templates = await bob.client.listResourceTemplates();
        expect(JSON.stringify(resources)).not.toContain('alice');
        expect(templates.resourceTemplates.map((t) => t.uriTemplate)).toContain('note://{name}');
        expect((await bob.client.listTools()).tools.map((t) => t.name)).toContain('notes__bump');
        expect(bob.client.getInstructions() ?? '').not.toContain('alice');
        expect(JSON.stringify(gateway.conflux.upstreams.statuses())).not.toContain('alice');
        // Each reaches their own notes through the template, on their own instance.
        const own = await bob.client.readResource({ uri: 'note://bob' });
        expect(own.contents.map((c) => (c as { text?: string }).text)).toEqual(['notes of bob']);
        const probe = await bob.client.readResource({ uri: 'note://alice' });
        expect(JSON.stringify(probe)).not.toContain('notes of alice');
      } finally {
        await bob.close();
      }
    } finally {
      await alice.close();
    }
  }, 60_000);

  it("keeps a user's instance while a resource subscription on it is held, however long it is idle", async () => {
    const alice = await session(gateway, 'alice');
    const carl = await session(gateway, 'carl');
    const updates: string[] = [];
    alice.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updates.push(n.params.uri));
    try {
      await alice.client.subscribeResource({ uri: 'note://alice' });
      const aliceSessions = upstream.sessionsOf('alice');
      // Carl uses his instance after Alice last sent anything: once his has been reaped for
      // idleness, hers has been idle longer still.
      expect(textOf(await carl.client.callTool({ name: 'notes__bump', arguments: { uri: 'note://carl' } }))).toBe('not subscribed');
      await waitFor(() => !gateway.conflux.upstreams.instances().some((i) => i.user === 'carl@example.com'), 20_000, "carl's idle instance to be reaped");
      expect(gateway.conflux.upstreams.instances().map((i) => i.user)).toContain('alice@example.com');
      // The same upstream session still holds her subscription, and its updates reach her.
      expect(textOf(await alice.client.callTool({ name: 'notes__bump', arguments: { uri: 'note://alice' } }))).toBe('notified');
      await waitFor(() => updates.includes('note://alice'), 15_000, 'the update to reach alice');
      expect(upstream.sessionsOf('alice')).toBe(aliceSessions);

      // Without a subscription, her instance is idle like any other.
      await alice.client.unsubscribeResource({ uri: 'note://alice' });
      await waitFor(() => !gateway.conflux.upstreams.instances().some((i) => i.user === 'alice@example.com'), 20_000, "alice's instance to be reaped once unsubscribed");
    } finally {
      await Promise.all([alice.close(), carl.close()]);
    }
  }, 60_000);
});
