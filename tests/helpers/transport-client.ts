import { Client } from '@modelcontextprotocol/client';
import { afterAll, beforeAll } from 'vitest';
import { HttpClientTransport } from '../../src/upstream/http-client-transport.js';
import type { OwnerChannel } from '../../src/upstream/owner-channel.js';
import { startMisbehavingUpstream, type MisbehavingUpstream } from '../fixtures/misbehaving-http-upstream.js';

/** The message limit of the connections under test: small, so that an upstream can pass it in a test. */
export const MESSAGE_LIMIT = 64 * 1024;

export interface TransportClient {
  client: Client;
  transport: HttpClientTransport;
}

/**
 * A real SDK client on the gateway's Streamable HTTP transport, connected the 2025 way
 * (`initialize`), as the gateway's connections are; with `owners` when the test needs to see
 * whose request a message belongs to.
 */
export async function connectTransportClient(url: string, options: { name: string; owners?: OwnerChannel }): Promise<TransportClient> {
  const transport = new HttpClientTransport(new URL(url), { headers: {}, maxResponseBytes: MESSAGE_LIMIT, owners: options.owners });
  const client = new Client({ name: options.name, version: '1.0.0' });
  await client.connect(transport, { prior: { kind: 'legacy' } });
  return { client, transport };
}

/**
 * Registers the enclosing `describe`'s `beforeAll`, which starts a misbehaving upstream and
 * connects a client to it with `connect`, and its `afterAll`, which closes both. What it returns
 * holds them once `beforeAll` has run: read its fields inside the tests.
 */
export function misbehavingUpstreamWithClient(connect: (url: string) => Promise<{ client: Client }>): { readonly upstream: MisbehavingUpstream; readonly client: Client } {
  let upstream: MisbehavingUpstream | undefined;
  let client: Client | undefined;
  beforeAll(async () => {
    upstream = await startMisbehavingUpstream();
    ({ client } = await connect(upstream.url));
  });
  afterAll(async () => {
    await client?.close();
    await upstream?.close();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the misbehaving upstream is read before its beforeAll ran');
    return value;
  };
  return {
    get upstream() {
      return started(upstream);
    },
    get client() {
      return started(client);
    },
  };
}
