import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createConflux, type Conflux } from '../../src/conflux.js';
import type { OpenedDatabase } from '../../src/store/database.js';
import { capturedLog } from '../helpers/captured-log.js';
import { freshPglite } from '../helpers/databases.js';
import { sdkClient, stdioFixture, testConfig } from '../helpers/gateway.js';

// What a bug's TypeError may say: internal paths and names no client should read.
const INTERNAL = 'Cannot read properties of undefined (reading "postings") at /srv/conflux/dist/catalog/tool-search.js:88';

interface LogLine {
  msg: string;
  incident?: string;
  err?: { message?: string; stack?: string };
}

/** The incident id a client was given, and the log line with the error under that id. */
function incidentOf(text: string, lines: readonly LogLine[]): { incident: string; logged: LogLine | undefined } {
  const incident = /incident ([0-9a-f-]{36})/.exec(text)?.[1];
  expect(incident, `an incident id in "${text}"`).toBeDefined();
  return { incident: incident!, logged: lines.find((l) => l.incident === incident) };
}

describe('unexpected errors reach clients only as an incident id', () => {
  const { logger, lines } = capturedLog<LogLine>();
  let conflux: Conflux;
  let database: OpenedDatabase;
  let url: string;
  let base: string;

  beforeAll(async () => {
    database = await freshPglite().open();
    conflux = createConflux(testConfig({ alpha: stdioFixture('alpha') }), { logger, database });
    await conflux.start();
    url = (await conflux.listen('127.0.0.1', 0)).url;
    base = url.replace(/\/mcp$/, '/api/v1');
    await conflux.upstreams.settled(15_000);
    // A bug on the routing path of one tool (the search meta-tool's index), raised inside the real gateway.
    vi.spyOn(conflux.catalog, 'searchIndex', 'get').mockImplementation(() => {
      throw new TypeError(INTERNAL);
    });
  });

  afterAll(async () => {
    vi.restoreAllMocks();
    await conflux?.stop();
    await database?.close().catch(() => {}); // closed by the audit test already
  });

  for (const [path, roots] of [
    ['the plain tools/call path', undefined],
    ['the SDK server path', []],
  ] as const) {
    it(`on ${path}: a JSON-RPC -32603 with the id, the error logged under it`, async () => {
      const { client, close } = await sdkClient(url, { name: 'error-surfaces', roots });
      try {
        const failure = await client.callTool({ name: 'conflux__search_tools', arguments: { query: 'echo' } }).then(
          () => undefined,
          (error: unknown) => error as { code?: number; message: string; data?: { incident?: string } },
        );
        expect(failure?.code).toBe(-32603);
        expect(failure!.message).not.toContain('postings');
        expect(failure!.message).not.toContain('/srv/conflux');
        const { incident, logged } = incidentOf(failure!.message, lines);
        expect(failure!.data?.incident).toBe(incident);
        expect(logged?.err?.message).toBe(INTERNAL);
        expect(logged?.err?.stack).toContain('TypeError');
      } finally {
        await close();
      }
    });
  }

  it('keeps the message of an expected error (an unknown tool) on MCP', async () => {
    const { client, close } = await sdkClient(url, { name: 'error-surfaces' });
    try {
      await expect(client.callTool({ name: 'no_such_tool', arguments: {} })).rejects.toThrow('Unknown tool: "no_such_tool"');
    } finally {
      await close();
    }
  });

  it("passes an upstream's own JSON-RPC error through with its code and text, as no incident", async () => {
    const { client, close } = await sdkClient(url, { name: 'error-surfaces' });
    try {
      // The upstream refuses a prompt without its required argument (-32602); the gateway only relays it.
      const failure = await client.getPrompt({ name: 'alpha__greet', arguments: {} }).then(
        () => undefined,
        (error: unknown) => error as { code?: number; message: string },
      );
      expect(failure?.code).toBe(-32602);
      expect(failure!.message).toMatch(/name/);
      expect(failure!.message).not.toMatch(/incident/);
      expect(failure!.message).not.toMatch(/MCP error -32602: MCP error -32602/);
    } finally {
      await close();
    }
  });

  it('on REST: a tool call whose routing throws is a 500 naming the incident only', async () => {
    const response = await fetch(`${base}/tools/conflux__search_tools/call`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'echo' }),
    });
    expect(response.status).toBe(500);
    const body = (await response.json()) as { error: { code: string; message: string; details?: { incident?: string } } };
    expect(body.error.code).toBe('internal');
    expect(JSON.stringify(body)).not.toContain('postings');
    const { incident, logged } = incidentOf(body.error.message, lines);
    expect(body.error.details?.incident).toBe(incident);
    expect(logged?.err?.message).toBe(INTERNAL);
  });

  it('on REST: an audit read from a database closed under the gateway is a 500 without the driver message', async () => {
    await database.close();
    const response = await fetch(`${base}/audit`);
    expect(response.status).toBe(500);
    const body = (await response.json()) as { error: { code: string; message: string } };
    const { logged } = incidentOf(body.error.message, lines);
    expect(logged?.err?.message).toBeTruthy();
    // Whatever the driver said stays in the log.
    expect(body.error.message).not.toContain(logged!.err!.message!);
    expect(body.error.message).toMatch(/^Internal server error \(incident [0-9a-f-]{36}\)$/);
  });
});
