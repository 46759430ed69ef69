import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/principal.js';
import { Secret } from '../../src/auth/secret.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { UpstreamAuth } from '../../src/upstream/auth/upstream-auth.js';
import { ChildProcessGroups } from '../../src/upstream/child-processes.js';
import { UpstreamUnavailableError } from '../../src/upstream/errors.js';
import { PerUserServer, type PerUserServerDeps } from '../../src/upstream/per-user-server.js';
import type { UpstreamConnection } from '../../src/upstream/upstream-connection.js';
import { UserInstances } from '../../src/upstream/user-instances.js';
import { ROOT, testConfig, textOf, waitFor } from '../helpers/gateway.js';
import { nodeArgs } from '../helpers/built-entries.js';

/**
 * A user's instance of a per-user server being replaced (its credential expired, the user
 * presents a new one) while a new definition's entry supersedes the server's: the replacement
 * is not started by the old entry, which no longer serves anyone, so the user's call reaches
 * an instance of the new definition rather than a failure about a place already held.
 */
const GENERATION_FIXTURE = resolve(ROOT, 'tests/fixtures/generation-stdio-server.ts');

function definition(generation: string) {
  return testConfig({
    ident: { transport: 'stdio', shared: false, command: process.execPath, args: nodeArgs(GENERATION_FIXTURE), cwd: ROOT, env: { WHO: '${user.token}', GENERATION: generation } },
  }).servers.ident!;
}

function alice(token: string, expiresAt: number): Principal {
  return { id: 'alice@example.com', subject: 'alice', groups: [], roles: [], scopes: [], method: 'jwt', expiresAt, token: new Secret(token) };
}

/** Credentials ready at once, or (`held`) once the test lets them be. */
function authThat(held: Promise<void> | undefined): UpstreamAuth {
  return { ready: () => held ?? Promise.resolve(), credentials: async () => ({ headers: {}, query: {} }), onRejected: async () => false, close: () => {} };
}

function entryDeps(instances: UserInstances<UpstreamConnection>, authFor: PerUserServerDeps['authFor']): PerUserServerDeps {
  return {
    connection: {
      logger: silentLogger(),
      groups: new ChildProcessGroups(),
      reconnect: { initialDelayMs: 100, maxDelayMs: 500, maxAttempts: 0 },
      health: { breaker: { failureThreshold: 5, cooldownMs: 1000 }, pingIntervalMs: 0, pingTimeoutMs: 1000, pingFailureThreshold: 3 },
    },
    authFor,
    eventsFor: () => ({ onServerRequest: async () => ({}), onLogMessage: () => {}, onResourceUpdated: () => {} }),
    instances,
    events: { started: () => {}, stopped: () => {}, reaped: () => {} },
    onChange: () => {},
  };
}

describe("a user's instance replaced while a new definition supersedes its server", () => {
  it('is replaced by an instance of the new definition, the old entry starting none', async () => {
    const instances = new UserInstances<UpstreamConnection>({ idleSeconds: 0, maxPerUser: 5, maxTotal: 20 });
    let letThrough = () => {};
    const held = new Promise<void>((resolve) => (letThrough = resolve));
    // The old entry's credentials are slow after its first start: a start it made would hold the user's place meanwhile.
    let oldStarts = 0;
    const old = new PerUserServer('ident', definition('one'), entryDeps(instances, () => authThat(++oldStarts > 1 ? held : undefined)));
    const fresh = new PerUserServer('ident', definition('two'), entryDeps(instances, () => authThat(undefined)));
    try {
      const first = await old.forCaller({ principal: alice('expired', Date.now() - 1000) });
      expect(first.state).toBe('ready');

      // The credential expired and the user has a new one: the instance is stopped, then another started...
      const replacing = old.forCaller({ principal: alice('renewed', Date.now() + 600_000) }).then(
        () => 'started',
        (error: unknown) => error,
      );
      // ...while the server switches to its new definition (as `UpstreamPool` does once the new entry has come up).
      old.supersede();
      let settled = false;
      void replacing.then(() => (settled = true));
      await waitFor(() => settled || oldStarts > 1, 20_000, 'the old entry to give the replacement up, or to start it');

      const upstream = await fresh.forCaller({ principal: alice('renewed', Date.now() + 600_000) });
      const answer = JSON.parse(textOf(await upstream.request('tools/call', { name: 'whoami', arguments: {} }))) as { who: string; generation: string };
      expect(answer).toMatchObject({ who: 'renewed', generation: 'two' });
      letThrough();
      expect(await replacing).toBeInstanceOf(UpstreamUnavailableError);
      expect(oldStarts).toBe(1);
    } finally {
      letThrough();
      await Promise.all([old.stop(), fresh.stop()]);
      instances.close();
    }
  });
});
