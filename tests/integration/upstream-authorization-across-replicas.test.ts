import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { createConflux, type Conflux } from '../../src/conflux.js';
import { silentLogger } from '../../src/observability/logger.js';
import { MemoryHub, MemorySharedState } from '../../src/state/memory-state.js';
import type { SharedState } from '../../src/state/shared-state.js';
import type { OpenedDatabase } from '../../src/store/database.js';
import { holderNamed } from '../../src/upstream/auth/pending-authorizations.js';
import type { TestIdentityProvider } from '../fixtures/oidc-provider.js';
import type { ProtectedUpstream } from '../fixtures/protected-upstream.js';
import { bearer, clientWithHeaders, hs256Token, JWT_SECRET } from '../helpers/auth.js';
import { AuthorizationBrowser } from '../helpers/authorization-browser.js';
import { testConfig, textOf, waitFor } from '../helpers/gateway.js';
import { newRedis, redisAvailable, testSharedState } from '../helpers/redis.js';
import { startUserIdentityWorld, type UserIdentityWorld } from '../helpers/user-identity-harness.js';

/**
 * A user's authorization of an upstream (`identity: user`) across replicas behind a balancer
 * without stickiness: the authorization lives in the replica that started it, and its link and
 * callback are answered wherever they land. Two replicas share their state (a MemoryHub, or
 * Redis) and one database (the token, once stored, serves on both); the browser is the test's
 * balancer, sending each request to the replica a scenario names.
 */

/** The address every replica gives users (`publicUrl`): the balancer's. Nothing listens there; the browser below routes each request. */
const PUBLIC_URL = 'http://127.0.0.1:9';

interface Backend {
  /** A new replica's state, sharing the store with the others. */
  state(): SharedState;
  cleanup(): Promise<void>;
}

const memoryBackend = async (): Promise<Backend> => {
  const hub = new MemoryHub();
  return { state: () => new MemorySharedState(hub), cleanup: async () => {} };
};

const redisBackend = async (): Promise<Backend> => {
  const redis = newRedis();
  const keyPrefix = `test-authorization-replicas-${randomUUID()}:`;
  return {
    state: () => testSharedState(redis, keyPrefix),
    cleanup: async () => {
      const keys = await redis.keys(`${keyPrefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    },
  };
};

describeAcrossReplicas('memory', memoryBackend);
if (await redisAvailable()) describeAcrossReplicas('redis', redisBackend);

interface Replica {
  conflux: Conflux;
  url: string;
  origin: string;
  stop(): Promise<void>;
}

async function startReplica(config: Config, state: SharedState, database: OpenedDatabase): Promise<Replica> {
  const conflux = createConflux(config, { logger: silentLogger(), database, state });
  await conflux.start();
  const { url } = await conflux.listen('127.0.0.1', 0);
  return { conflux, url, origin: new URL(url).origin, stop: () => conflux.stop() };
}

/** A user's browser behind the balancer: each request goes to the replica `via` names at the time. */
function browserThrough(via: () => Replica): AuthorizationBrowser {
  return new AuthorizationBrowser((url, init) => {
    const { pathname, search } = new URL(url);
    return fetch(`${via().origin}${pathname}${search}`, { ...init, redirect: 'manual' });
  });
}

/** The start link a tool error carries. */
const linkIn = (text: string) => /https?:\/\/\S+/.exec(text.slice(text.indexOf('Open this URL')))?.[0];
const handleOf = (link: string) => new URL(link).pathname.split('/').at(-1)!;

function describeAcrossReplicas(backend: string, shared: () => Promise<Backend>): void {
  describe(`a user's upstream authorization across replicas (${backend})`, { timeout: 120_000 }, () => {
    let world: UserIdentityWorld;
    let idp: TestIdentityProvider;
    let upstream: ProtectedUpstream;
    let database: OpenedDatabase;
    let store: Backend;
    let config: Config;
    let a: Replica;
    let b: Replica;
    const tokens: Record<string, string> = {};

    beforeAll(async () => {
      // The provider (accounts alice and bob), the upstream it protects, and one database for every replica.
      world = await startUserIdentityWorld();
      ({ idp, upstream, database } = world);
      store = await shared();
      config = testConfig(
        { docs: { url: upstream.url, auth: { method: 'oauth2', identity: 'user', scopes: ['mcp:tools'] }, prefix: 'docs' } },
        {
          auth: { jwt: { secret: JWT_SECRET } },
          access: { defaultLevel: 'call' },
          // One key on every replica: a token stored through one opens on the others.
          upstreamIdentity: { publicUrl: PUBLIC_URL, tokenKey: randomBytes(32).toString('base64') },
        },
      );
      a = await startReplica(config, store.state(), database);
      b = await startReplica(config, store.state(), database);
      for (const user of ['alice', 'bob', 'carol']) tokens[user] = await hs256Token({ sub: user, email: `${user}@example.com` });
    });
    afterAll(async () => {
      await a?.stop();
      await b?.stop();
      await store?.cleanup();
      await world?.close();
    });

    /** Calls `docs__whoami` as `user` through `replica`. */
    const whoami = async (replica: Replica, user: string) => {
      const client = await clientWithHeaders(replica.url, bearer(tokens[user]!));
      try {
        return await client.client.callTool({ name: 'docs__whoami', arguments: {} });
      } finally {
        await client.close();
      }
    };
    /** The link the refused call of `user` through `replica` gives (once the server's tools are listed: someone authorised it). */
    const linkFor = async (replica: Replica, user: string) => {
      const refused = await whoami(replica, user);
      expect(refused.isError).toBe(true);
      const link = linkIn(textOf(refused));
      expect(link?.startsWith(`${PUBLIC_URL}/oauth/start/`)).toBe(true);
      return link!;
    };
    /** The link `user` is given when starting an authorization through the API of `replica` (the way before anyone authorised the server). */
    const linkStarted = async (replica: Replica, user: string) => {
      const started = await fetch(`${replica.origin}/api/v1/connections/docs`, { method: 'POST', headers: bearer(tokens[user]!) });
      expect(started.status).toBe(200);
      const { authorizationUrl } = (await started.json()) as { authorizationUrl: string };
      expect(authorizationUrl.startsWith(`${PUBLIC_URL}/oauth/start/`)).toBe(true);
      return authorizationUrl;
    };

    it('completes an authorization started through one replica with its link and callback answered by the other, and the user calls through both', async () => {
      // Nobody has authorised the server yet, so its tools are not listed: the link comes from the API.
      const link = await linkStarted(a, 'alice');
      // The link names the replica holding the authorization: A.
      expect(holderNamed(handleOf(link))).toBe(a.conflux.state.replicaId);

      const browser = browserThrough(() => b);
      const page = await browser.open(link);
      expect(page.status).toBe(200);
      expect(page.html).toContain('alice@example.com');
      const confirmed = await browser.confirm(link, page);
      expect(confirmed.status).toBe(303);
      const authorizationServer = new URL(confirmed.headers.get('location')!);
      expect(authorizationServer.origin).toBe(idp.issuer);
      expect(authorizationServer.searchParams.get('redirect_uri')).toBe(`${PUBLIC_URL}/oauth/callback`);
      expect(holderNamed(authorizationServer.searchParams.get('state')!)).toBe(a.conflux.state.replicaId);
      // The holder's cookies reached the browser through B, with their attributes.
      expect(browser.setCookies.some((line) => /^conflux_oauth_[0-9a-f]{16}=.+; .*Path=\/oauth\/callback.*HttpOnly/i.test(line))).toBe(true);

      const callback = await browser.finish(idp, authorizationServer, 'alice');
      expect(callback.status).toBe(200);
      expect(callback.headers.get('content-type')).toContain('text/html');
      expect(callback.headers.get('cache-control')).toBe('no-store');
      expect(await callback.text()).toContain('Connected');
      // The callback cleared the binding cookie, through B as well.
      expect([...browser.cookies.keys()].filter((name) => name !== 'conflux_oauth_confirm')).toEqual([]);

      // Each replica lists the server's tools once alice's own instance there has started.
      const goesThrough = (replica: Replica) => async () => {
        const result = await whoami(replica, 'alice').catch(() => undefined);
        return result !== undefined && !result.isError;
      };
      await waitFor(goesThrough(a), 60_000, "alice's call through A to go through");
      expect(JSON.parse(textOf(await whoami(a, 'alice')))).toMatchObject({ sub: 'alice', aud: upstream.url });
      await waitFor(goesThrough(b), 60_000, "alice's call through B to go through");
      expect(JSON.parse(textOf(await whoami(b, 'alice')))).toMatchObject({ sub: 'alice', aud: upstream.url });
    });

    it('refuses a callback forwarded without the cookie of the browser that confirmed the link, as one replica does', async () => {
      const link = await linkFor(a, 'bob');
      const browser = browserThrough(() => b);
      const authorizationServer = await browser.authorizationServerUrl(link);
      const code = await idp.authorize(authorizationServer, 'bob');

      // Another browser (no cookies) brings the code and state back, through B.
      const stranger = browserThrough(() => b);
      const refused = await stranger.callback(authorizationServer, { code, iss: idp.issuer });
      expect(refused.status).toBe(400);
      expect(await refused.text()).toContain('was not started in this browser');
      // The authorization was dropped, as on one replica: the user's own browser now finds it gone.
      const late = await browser.callback(authorizationServer, { code, iss: idp.issuer });
      expect(late.status).toBe(400);
      expect(await late.text()).toContain('unknown, was already used, or has expired');
      expect((await whoami(a, 'bob')).isError).toBe(true);
    });

    it('tells the browser an authorization is no longer pending when the replica holding it is gone', async () => {
      const c = await startReplica(config, store.state(), database);
      let link: string;
      let authorizationServer: URL;
      try {
        link = await linkStarted(c, 'carol');
        // Confirmed through C while it runs: its callback names C as well.
        authorizationServer = await browserThrough(() => c).authorizationServerUrl(link);
      } finally {
        await c.stop();
      }
      const browser = browserThrough(() => b);
      const page = await browser.open(link);
      expect(page.status).toBe(400);
      expect(page.html).toContain('no longer pending');
      expect(page.html).toContain('Call the tool again');

      const callback = await browser.callback(authorizationServer, { code: 'a-code' });
      expect(callback.status).toBe(400);
      expect(callback.headers.get('cache-control')).toBe('no-store');
      expect(await callback.text()).toContain('no longer pending');
      // B serves on.
      expect((await fetch(`${b.origin}/health`)).status).toBe(200);
    });

    it('tells the other replica when a user authorises or revokes: no second link there, and no instance left with a revoked token', async () => {
      // B has read that bob has no token (an answer it keeps a few seconds).
      expect((await whoami(b, 'bob')).isError).toBe(true);
      const link = await linkFor(a, 'bob');
      const browser = browserThrough(() => a);
      const authorizationServer = await browser.authorizationServerUrl(link);
      expect((await browser.finish(idp, authorizationServer, 'bob')).status).toBe(200);

      // Through B straight away, without being asked again.
      const through = await whoami(b, 'bob');
      expect(through.isError).toBeFalsy();
      expect(JSON.parse(textOf(through))).toMatchObject({ sub: 'bob', aud: upstream.url });

      // Revoked through A: bob's instance on B stops with it, and B asks bob to authorise again.
      const revoked = await fetch(`${a.origin}/api/v1/connections/docs`, { method: 'DELETE', headers: bearer(tokens.bob!) });
      expect(revoked.status).toBe(204);
      const after = await whoami(b, 'bob');
      expect(after.isError).toBe(true);
      expect(linkIn(textOf(after))?.startsWith(`${PUBLIC_URL}/oauth/start/`)).toBe(true);
    });

    it('answers a forged handle or state naming a replica that does not exist, or one that holds nothing of it, without harm', async () => {
      const browser = browserThrough(() => b);
      const random = () => randomBytes(32).toString('base64url');

      const nowhere = await browser.open(`${PUBLIC_URL}/oauth/start/${randomUUID()}.${random()}`);
      expect(nowhere.status).toBe(400);
      expect(nowhere.html).toContain('no longer pending');
      const nowhereCallback = await fetch(`${b.origin}/oauth/callback?${new URLSearchParams({ state: `${randomUUID()}.${random()}`, code: 'x' })}`);
      expect(nowhereCallback.status).toBe(400);
      expect(await nowhereCallback.text()).toContain('no longer pending');

      // Naming A, which holds no such record: A's own answer, through B.
      const unknownAtA = await browser.open(`${PUBLIC_URL}/oauth/start/${a.conflux.state.replicaId}.${random()}`);
      expect(unknownAtA.status).toBe(400);
      expect(unknownAtA.html).toContain('Link not valid');
      const stateAtA = await fetch(`${b.origin}/oauth/callback?${new URLSearchParams({ state: `${a.conflux.state.replicaId}.${random()}`, code: 'x' })}`);
      expect(stateAtA.status).toBe(400);
      expect(await stateAtA.text()).toContain('unknown, was already used, or has expired');

      // Not a handle at all: refused where it lands.
      const malformed = await browser.open(`${PUBLIC_URL}/oauth/start/a.b.${random()}`);
      expect(malformed.status).toBe(400);
      expect(malformed.html).toContain('Link not valid');
      expect((await fetch(`${b.origin}/health`)).status).toBe(200);
      expect((await fetch(`${a.origin}/health`)).status).toBe(200);
    });
  });
}
