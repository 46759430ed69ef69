import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { capturedLog } from '../helpers/captured-log.js';
import { ROOT, sdkClient, startGateway, stdioFixture, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';

/**
 * Upstreams ask `roots/list` on their own, right after initialize: the gateway answers with the
 * server's configured `roots`, and does so too when the calling client has none to give or when
 * the request cannot be told apart among several sessions' calls.
 */

type LogLine = { level: number; msg: string; server?: string; stream?: string };

/** Lines that complain about roots, or anything at warn or above. */
function complaints(lines: LogLine[]): LogLine[] {
  return lines.filter((l) => l.level >= 40 || (/\broots?\b/i.test(l.msg) && /fail|error|refus|relayed only|not support/i.test(l.msg)));
}

interface Running extends RunningGateway {
  lines: LogLine[];
}

/** A gateway logging at debug into `lines`, started once its upstreams settled (30 s at the most). */
async function start(config: Config): Promise<Running> {
  const { logger, lines } = capturedLog<LogLine>();
  const gateway = await startGateway(config, { logger, until: (conflux) => conflux.upstreams.settled(30_000) });
  return { ...gateway, lines };
}

/** What the fixture's `roots/list` at start got, once it has an answer. */
async function rootsSeen(client: Client, server: string): Promise<unknown> {
  let seen: unknown;
  await waitFor(
    async () => {
      const text = textOf(await client.callTool({ name: `${server}__roots_seen`, arguments: {} }));
      seen = JSON.parse(text);
      return seen !== 'not asked yet';
    },
    10_000,
    `${server} to get its roots`,
  );
  return seen;
}

describe('roots asked by an upstream', () => {
  const asksAtStart = { env: { ROOTS_AT_START: '1' } };
  let gateway: Running;
  let plain: Awaited<ReturnType<typeof sdkClient>>;
  let ann: Awaited<ReturnType<typeof sdkClient>>;

  beforeAll(async () => {
    gateway = await start(
      testConfig({
        rooted: stdioFixture('rooted', { ...asksAtStart, roots: [{ uri: 'file:///srv/project', name: 'project' }, { uri: 'file:///srv/shared files/../data dir' }] }),
        bare: stdioFixture('bare', asksAtStart),
      }),
    );
    plain = await sdkClient(gateway.url, { name: 'plain' });
    ann = await sdkClient(gateway.url, { name: 'ann', roots: ['file:///home/ann'] });
  });
  afterAll(async () => {
    await plain?.close();
    await ann?.close();
    await gateway?.conflux.stop();
  });

  it('answers roots/list asked right after initialize with the configured roots, normalised', async () => {
    expect(await rootsSeen(plain.client, 'rooted')).toEqual({
      roots: [{ uri: 'file:///srv/project', name: 'project' }, { uri: 'file:///srv/data%20dir' }],
    });
  });

  it('answers an empty list to a server without roots, and logs no complaint about it', async () => {
    expect(await rootsSeen(plain.client, 'bare')).toEqual({ roots: [] });
    // The fixture echoes its answer on stderr, which the gateway logs: it got the list, not an error.
    await waitFor(() => gateway.lines.some((l) => l.server === 'bare' && l.msg === 'roots at start: []'), 5000, 'the stderr line');
    expect(gateway.lines.filter((l) => l.msg.startsWith('roots at start failed'))).toEqual([]);
    expect(complaints(gateway.lines)).toEqual([]);
  });

  it('during a call, asks the calling client that declared roots, and answers the configured roots to one that did not', async () => {
    expect(textOf(await ann.client.callTool({ name: 'rooted__list_roots', arguments: {} }))).toBe('file:///home/ann');
    expect(textOf(await plain.client.callTool({ name: 'rooted__list_roots', arguments: {} }))).toBe('file:///srv/project,file:///srv/data%20dir');
    expect(textOf(await plain.client.callTool({ name: 'bare__list_roots', arguments: {} }))).toBe('');
  });

  it('answers the configured roots, not any client`s, while calls of several sessions are in flight', async () => {
    const controller = new AbortController();
    const work = plain.client.callTool({ name: 'rooted__work', arguments: {} }, undefined, { signal: controller.signal }).catch(() => undefined);
    try {
      await waitFor(async () => textOf(await ann.client.callTool({ name: 'rooted__work_status', arguments: {} })) === 'running', 10_000, 'work to start');
      // ann declared roots, but the upstream's request names no call: it cannot be told whose it is.
      expect(textOf(await ann.client.callTool({ name: 'rooted__list_roots', arguments: {} }))).toBe('file:///srv/project,file:///srv/data%20dir');
    } finally {
      controller.abort();
      await work;
    }
  });
});

describe('the demo config', () => {
  let gateway: Running;
  let client: Awaited<ReturnType<typeof sdkClient>>;

  beforeAll(async () => {
    const config = await loadConfigFile(join(ROOT, 'mcp-servers.yaml'), {});
    // Relative paths in the demo (the files server's `demo` folder) are relative to the project.
    for (const server of Object.values(config.servers)) if (server.transport === 'stdio') server.cwd ??= ROOT;
    gateway = await start(config);
    client = await sdkClient(gateway.url, { name: 'demo-client' });
  });
  afterAll(async () => {
    await client?.close();
    await gateway?.conflux.stop();
  });

  it('starts the files server without a roots failure, still limited to ./demo', async () => {
    expect(gateway.conflux.upstreams.get('files')?.state).toBe('ready');
    // server-filesystem asks roots/list once initialized and writes what it made of the answer on stderr.
    const aboutRoots = (l: LogLine) => l.server === 'files' && /\broots?\b/i.test(l.msg);
    await waitFor(() => gateway.lines.some(aboutRoots), 10_000, 'the files server to get its roots');
    expect(gateway.lines.filter(aboutRoots).map((l) => l.msg)).toEqual(['No valid root directories provided by client']);
    const allowed = textOf(await client.client.callTool({ name: 'files__list_allowed_directories', arguments: {} }));
    expect(allowed).toContain(join(ROOT, 'demo'));
  });

  it('answers the everything server its (empty) roots and logs no complaint', async () => {
    const text = textOf(await client.client.callTool({ name: 'everything__get-roots-list', arguments: {} }));
    expect(text).toContain('no roots are currently configured');
    expect(complaints(gateway.lines)).toEqual([]);
  });
});
