import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OpenedDatabase } from '../../src/store/database.js';
import { bearer, hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { freshPglite, freshPostgres, postgresAvailable, type TestDatabase } from '../helpers/databases.js';
import { startGateway, stdioFixture, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';

/**
 * Upstream log messages carry whatever the server chose to write, so they are delivered like
 * data: only to sessions whose principal may read that server (judged at delivery), a call's
 * messages only to the session that made it, and each session at its own level. Principals:
 * ann may call alpha; bob may call alpha and beta; carol has no grant; root is an admin.
 */
interface Peer {
  client: Client;
  sessionId: string;
  /** The `data` of every log message received, in order. */
  logs: string[];
  close(): Promise<void>;
}

/** A settling pause before checking that something did NOT arrive (it would have by now). */
const settle = () => new Promise((r) => setTimeout(r, 250));

describe('upstream log messages', () => {
  let gateway: RunningGateway;
  let store: TestDatabase | undefined;
  let database: OpenedDatabase | undefined;
  let base: string;
  const tokens: Record<string, string> = {};
  const peers: Peer[] = [];

  /** A session of `who`, with its GET stream open (where messages not caused by a call travel). */
  async function peer(who: string): Promise<Peer> {
    const client = new Client({ name: who, version: '1.0.0' });
    const logs: string[] = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(String(n.params.data)));
    const transport = new StreamableHTTPClientTransport(new URL(gateway.url), { requestInit: { headers: bearer(tokens[who]!) } });
    await client.connect(transport);
    const sessionId = transport.sessionId!;
    await waitFor(() => gateway.conflux.sessions.get(sessionId)?.openStreams === 1, 5000, `${who}'s GET stream`);
    const opened: Peer = {
      client,
      sessionId,
      logs,
      close: async () => {
        await transport.terminateSession().catch(() => {});
        await client.close();
      },
    };
    peers.push(opened);
    return opened;
  }

  const rest = (who: string, path: string, init: RequestInit = {}) =>
    fetch(`${base}/api/v1${path}`, { ...init, headers: { ...bearer(tokens[who]!), 'content-type': 'application/json' } });

  const levelOn = async (server: string, root: Peer) => textOf(await root.client.callTool({ name: `${server}__log_level`, arguments: {} }));

  beforeAll(async () => {
    // Grants are changed through the admin API, which stores them.
    store = (await postgresAvailable()) ? await freshPostgres() : freshPglite();
    database = await store.open();
    await database.migrate();
    const logTools = { env: { LOG_TOOLS: '1' } };
    gateway = await startGateway(
      testConfig(
        { alpha: stdioFixture('alpha', logTools), beta: stdioFixture('beta', logTools) },
        {
          auth: { jwt: { secret: JWT_SECRET } },
          access: {
            grants: [
              { user: 'ann@example.com', servers: ['alpha'], level: 'call' },
              { user: 'bob@example.com', servers: ['alpha', 'beta'], level: 'call' },
            ],
          },
        },
      ),
      { database },
    );
    base = gateway.url.replace(/\/mcp$/, '');
    tokens.ann = await hs256Token({ sub: 'u-ann', email: 'ann@example.com' }, { expiresIn: '1h' });
    tokens.bob = await hs256Token({ sub: 'u-bob', email: 'bob@example.com' }, { expiresIn: '1h' });
    tokens.carol = await hs256Token({ sub: 'u-carol', email: 'carol@example.com' }, { expiresIn: '1h' });
    tokens.root = await hs256Token({ sub: 'u-root', email: 'root@example.com', groups: ['MCP-Admin'] }, { expiresIn: '1h' });
  }, 30_000);

  afterAll(async () => {
    for (const p of peers) await p.close();
    await gateway?.stop();
    await database?.close();
    await store?.dispose();
  });

  it('changes upstream levels only on servers the caller may read, to the most verbose level among their readers', async () => {
    const root = await peer('root');
    const carol = await peer('carol');
    const ann = await peer('ann');
    // carol may read nothing: her debug reaches no upstream.
    await carol.client.setLoggingLevel('debug');
    expect(await levelOn('alpha', root)).toBe('unset');
    expect(await levelOn('beta', root)).toBe('unset');
    // ann's warning reaches alpha only, at info: root (who set nothing) still gets info about its calls.
    await ann.client.setLoggingLevel('warning');
    expect(await levelOn('alpha', root)).toBe('info');
    expect(await levelOn('beta', root)).toBe('unset');
    await Promise.all([root.close(), carol.close(), ann.close()]);
  });

  it('asks an upstream that came back for the level its previous session was set to', async () => {
    const root = await peer('root');
    const bob = await peer('bob');
    try {
      await bob.client.setLoggingLevel('debug');
      expect(await levelOn('beta', root)).toBe('debug');
      // The process exits; the gateway starts another, which begins unset.
      await root.client.callTool({ name: 'beta__crash', arguments: {} });
      await waitFor(() => gateway.conflux.upstreams.get('beta')?.state !== 'ready', 15_000, 'beta to go down');
      await waitFor(async () => (await levelOn('beta', root)) === 'debug', 15_000, 'the restarted upstream to log at debug');
    } finally {
      await Promise.all([root.close(), bob.close()]);
    }
  });

  it('delivers a background log line only to sessions that may read the server, each at its own level', async () => {
    const root = await peer('root');
    const carol = await peer('carol');
    const ann = await peer('ann');
    await carol.client.setLoggingLevel('debug');
    await root.client.setLoggingLevel('debug');
    await ann.client.setLoggingLevel('info');

    const scheduled = await ann.client.callTool({ name: 'alpha__log_later', arguments: { text: 'token=s3cret', ms: 30 } });
    expect(textOf(scheduled)).toBe('scheduled');
    await waitFor(() => root.logs.length >= 3 && ann.logs.length >= 2, 5000, 'the background lines');
    await settle();

    expect(root.logs).toEqual(['alpha background debug: token=s3cret', 'alpha background info: token=s3cret', 'alpha background error: token=s3cret']);
    // ann asked for info: root's and carol's debug change nothing for her.
    expect(ann.logs).toEqual(['alpha background info: token=s3cret', 'alpha background error: token=s3cret']);
    // carol asked for debug and holds a stream, but may not read alpha.
    expect(carol.logs).toEqual([]);
  });

  it('sends a message caused by a call only to the session that made it, at that session\'s level', async () => {
    const bob = await peer('bob');
    const ann = await peer('ann');
    await bob.client.setLoggingLevel('debug');

    // ann never set a level: her calls' messages come at the default threshold (info), not at bob's debug.
    await ann.client.callTool({ name: 'alpha__log', arguments: { text: 'ann-private' } });
    await waitFor(() => ann.logs.length >= 2, 3000, "ann's log lines");
    expect(ann.logs).toEqual(['alpha info: ann-private', 'alpha error: ann-private']);

    // ann asks for errors only; bob's debug does not widen it.
    await ann.client.setLoggingLevel('error');
    await ann.client.callTool({ name: 'alpha__log', arguments: { text: 'ann-errors' } });
    await waitFor(() => ann.logs.length >= 3, 3000, "ann's error line");
    expect(ann.logs.slice(2)).toEqual(['alpha error: ann-errors']);

    // While bob's own call is in flight on alpha, ann's messages cannot be told apart from his: dropped, never sent to him.
    const bobCall = bob.client.callTool({ name: 'alpha__sleep', arguments: { ms: 400 } });
    await waitFor(() => gateway.conflux.sessions.get(bob.sessionId)?.activeCalls === 1, 3000, "bob's call in flight");
    await ann.client.callTool({ name: 'alpha__log', arguments: { text: 'ann-concurrent' } });
    expect(textOf(await bobCall)).toBe('alpha slept 400');
    await settle();
    expect(bob.logs).toEqual([]);
  });

  it('judges access when a message is delivered: a grant made or revoked later counts at once', async () => {
    const root = await peer('root');
    const carol = await peer('carol');
    await carol.client.setLoggingLevel('info');
    await root.client.setLoggingLevel('info');

    const granted = await rest('root', '/access/grants', { method: 'POST', body: JSON.stringify({ user: 'carol@example.com', server: 'alpha', level: 'read' }) });
    expect(granted.status).toBe(201);
    const { id } = (await granted.json()) as { id: string };
    // carol makes no request in between: her open stream alone.
    await root.client.callTool({ name: 'alpha__log_later', arguments: { text: 'after-grant', ms: 30 } });
    await waitFor(() => carol.logs.length >= 2, 5000, 'the line carol may now read');
    expect(carol.logs).toEqual(['alpha background info: after-grant', 'alpha background error: after-grant']);

    expect((await rest('root', `/access/grants/${id}`, { method: 'DELETE' })).status).toBe(204);
    await root.client.callTool({ name: 'alpha__log_later', arguments: { text: 'after-revoke', ms: 30 } });
    await waitFor(() => root.logs.some((l) => l.includes('after-revoke')), 5000, "root's copy of the line");
    await settle();
    expect(carol.logs.filter((l) => l.includes('after-revoke'))).toEqual([]);
  });
});
