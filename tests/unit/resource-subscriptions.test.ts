import { describe, expect, it } from 'vitest';
import { ResourceSubscriptions } from '../../src/gateway/resource-subscriptions.js';
import type { DownstreamSession } from '../../src/gateway/session-registry.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { UpstreamPool } from '../../src/upstream/upstream-pool.js';

/** Upstreams as the subscriptions see them: by name, each recording what it was asked. */
function upstreams(asked: string[]): UpstreamPool {
  return { get: (server: string) => ({ request: async (method: string, params: { uri: string }) => void asked.push(`${server} ${method} ${params.uri}`) }) } as unknown as UpstreamPool;
}

const session = (id: string) => ({ id, subscriptions: new Map() }) as unknown as DownstreamSession;

describe('resource subscriptions', () => {
  it('give up the old hold when the same exposed URI is subscribed again over another route', async () => {
    const asked: string[] = [];
    const subscriptions = new ResourceSubscriptions(upstreams(asked), silentLogger());
    const s = session('s1');
    await subscriptions.subscribe(s, 'file:///notes', { server: 'a', originalUri: 'file:///notes' });
    // The catalog changed: the exposed URI is now b's.
    await subscriptions.subscribe(s, 'file:///notes', { server: 'b', originalUri: 'file:///notes' });
    await subscriptions.release(s);
    await new Promise((r) => setImmediate(r));
    expect(asked.sort()).toEqual([
      'a resources/subscribe file:///notes',
      'a resources/unsubscribe file:///notes',
      'b resources/subscribe file:///notes',
      'b resources/unsubscribe file:///notes',
    ]);
  });
});
