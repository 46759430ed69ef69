import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient, sdkClient, startGateway, stdioFixture, testConfig, textOf, waitFor, type RunningGateway } from '../helpers/gateway.js';

/** The session's own DELETE, sent beside the SDK client (which keeps waiting for its call). */
async function deleteSession(url: string, client: Client): Promise<number> {
  const sessionId = (client.transport as unknown as { sessionId: string }).sessionId;
  const response = await fetch(url, { method: 'DELETE', headers: { 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' } });
  return response.status;
}

describe('closing a session with a tool call in flight', () => {
  let gateway: RunningGateway;
  let observer: Awaited<ReturnType<typeof connectClient>>;

  beforeAll(async () => {
    gateway = await startGateway(testConfig({ alpha: stdioFixture('alpha') }));
    observer = await connectClient(gateway.url, 'observer');
  });
  afterAll(async () => {
    await observer?.close();
    await gateway?.stop();
  });

  const status = async () => textOf(await observer.client.callTool({ name: 'alpha__work_status', arguments: {} }));

  // A client without sampling, elicitation or roots takes the fast path; one with roots, the SDK session server.
  it.each([
    ['the fast path', (url: string) => connectClient(url, 'plain')],
    ['the session server', (url: string) => sdkClient(url, { name: 'rooted', roots: ['file:///tmp'] })],
  ])('answers the call and cancels the upstream work on DELETE (%s)', { timeout: 20_000 }, async (_path, open) => {
    const caller = await open(gateway.url);
    try {
      // A long request timeout: only the gateway's answer may settle the call.
      const call = caller.client.callTool({ name: 'alpha__work', arguments: {} }, undefined, { timeout: 120_000 });
      const settled = call.then(
        (result) => ({ result }),
        (error: { code?: number; message?: string }) => ({ error }),
      );
      await waitFor(async () => (await status()) === 'running', 5000, 'the work to start');
      expect(await deleteSession(gateway.url, caller.client)).toBe(200);
      const outcome = await settled;
      expect(outcome).toMatchObject({ error: { code: -32000, message: expect.stringContaining('Session closed') } });
      await waitFor(async () => (await status()) === 'cancelled', 5000, 'the upstream work to be cancelled');
      expect(gateway.conflux.sessions.get((caller.client.transport as unknown as { sessionId: string }).sessionId)).toBeUndefined();
    } finally {
      await caller.close();
    }
  });
});
