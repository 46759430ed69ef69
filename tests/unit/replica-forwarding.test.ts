import { randomBytes, randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { ReplicaForwarding } from '../../src/http/replica-forwarding.js';
import { silentLogger } from '../../src/observability/logger.js';
import { BusRpc, ReplicaUnreachableError } from '../../src/state/bus-rpc.js';
import { MemoryHub, MemorySharedState } from '../../src/state/memory-state.js';
import { AUTHORIZATION_REFERENCE, holderNamed, PendingAuthorizations } from '../../src/upstream/auth/pending-authorizations.js';

describe('requests forwarded to the replica holding what they name', () => {
  const open: BusRpc[] = [];
  afterEach(() => {
    for (const rpc of open.splice(0)) rpc.close();
  });

  /** Two replicas on one hub; the holder answers with `app`, and both forward the `cookie` header only. */
  function replicas(app: Hono) {
    const hub = new MemoryHub();
    const [here, holder] = [new MemorySharedState(hub), new MemorySharedState(hub)];
    const rpcs = [here, holder].map((state) => new BusRpc(state.bus, silentLogger()));
    open.push(...rpcs);
    const options = { topic: 'test-forward', headers: (request: Request) => ({ cookie: request.headers.get('cookie') ?? '' }), timeoutMs: 5000, logger: silentLogger() };
    const forwarding = new ReplicaForwarding({ ...options, rpc: rpcs[0]!, answer: () => new Response('not this one', { status: 500 }) });
    new ReplicaForwarding({ ...options, rpc: rpcs[1]!, answer: (request) => app.fetch(request) });
    return { forwarding, holder: holder.replicaId };
  }

  it("answers with the holder's status, headers (each Set-Cookie on its own) and body; the path, query and chosen headers go along, other headers do not", async () => {
    const app = new Hono();
    app.get('/page/:id', (c) => {
      c.header('Cache-Control', 'no-store');
      c.header('Content-Security-Policy', "default-src 'none'");
      c.header('Referrer-Policy', 'no-referrer');
      c.header('X-Content-Type-Options', 'nosniff');
      // None of the forwarded routes sets these: they are not relayed.
      c.header('Access-Control-Allow-Origin', '*');
      c.header('X-Powered-By', 'the holder');
      c.header('Set-Cookie', 'one=1; Path=/a; HttpOnly', { append: true });
      c.header('Set-Cookie', 'two=2; Path=/b; SameSite=Lax', { append: true });
      return c.html(`<p>${c.req.param('id')} ${c.req.query('q')} ${c.req.header('cookie')} ${c.req.header('authorization') ?? 'none'}</p>`, 201);
    });
    app.get('/moved', (c) => c.redirect('https://elsewhere.example/x?y=1', 303));
    app.get('/empty', (c) => c.body(null, 204));
    const { forwarding, holder } = replicas(app);

    const request = new Request('http://gateway.example/page/7?q=%C3%A9t%C3%A9', { headers: { cookie: 'k=v', authorization: 'Bearer secret' } });
    const page = await forwarding.forward(holder, request);
    expect(page.status).toBe(201);
    expect(page.headers.get('content-type')).toBe('text/html; charset=UTF-8');
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(page.headers.getSetCookie()).toEqual(['one=1; Path=/a; HttpOnly', 'two=2; Path=/b; SameSite=Lax']);
    expect(page.headers.get('content-security-policy')).toBe("default-src 'none'");
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(new Set(page.headers.keys())).toEqual(new Set(['content-type', 'cache-control', 'content-security-policy', 'referrer-policy', 'x-content-type-options', 'set-cookie']));
    expect(await page.text()).toBe('<p>7 été k=v none</p>');

    const moved = await forwarding.forward(holder, new Request('http://gateway.example/moved'));
    expect(moved.status).toBe(303);
    expect(moved.headers.get('location')).toBe('https://elsewhere.example/x?y=1');
    const empty = await forwarding.forward(holder, new Request('http://gateway.example/empty'));
    expect(empty.status).toBe(204);
    expect(empty.body).toBeNull();
  });

  it('relays only the headers a forwarded page sets, whatever an answer on the bus claims', async () => {
    const hub = new MemoryHub();
    const [here, other] = [new MemorySharedState(hub), new MemorySharedState(hub)];
    const [rpc, otherRpc] = [here, other].map((state) => new BusRpc(state.bus, silentLogger())) as [BusRpc, BusRpc];
    open.push(rpc, otherRpc);
    const forwarding = new ReplicaForwarding({ rpc, topic: 'test-forward', headers: () => ({}), timeoutMs: 5000, logger: silentLogger(), answer: () => new Response(null, { status: 500 }) });
    // Whatever can write to the bus answers as it likes, not through `ReplicaForwarding`.
    otherRpc.serve('test-forward', () => ({
      status: 302,
      headers: [
        ['Content-Type', 'text/html; charset=UTF-8'],
        ['Location', 'https://idp.example/authorize'],
        ['Strict-Transport-Security', 'max-age=0'],
        ['Access-Control-Allow-Origin', '*'],
        ['Access-Control-Allow-Credentials', 'true'],
        ['Connection', 'close'],
        ['Set-Cookie', 'k=v; Path=/'],
      ],
      body: '',
    }));
    const answer = await forwarding.forward(other.replicaId, new Request('http://gateway.example/oauth/callback?state=x'));
    expect(answer.status).toBe(302);
    expect([...answer.headers]).toEqual([
      ['content-type', 'text/html; charset=UTF-8'],
      ['location', 'https://idp.example/authorize'],
      ['set-cookie', 'k=v; Path=/'],
    ]);
  });

  it('rejects with ReplicaUnreachableError for a replica nobody is', async () => {
    const { forwarding } = replicas(new Hono());
    await expect(forwarding.forward(randomUUID(), new Request('http://gateway.example/x'))).rejects.toBeInstanceOf(ReplicaUnreachableError);
  });
});

describe('the replica an authorization handle or state names', () => {
  it('names the holder in both, keeps 256 random bits after it, and reads back only well-formed values', () => {
    const holder = randomUUID();
    const pending = new PendingAuthorizations({ ttlMs: 60_000, holder });
    const record = pending.create('alice', 'docs', undefined, {});
    for (const reference of [record.handle, record.state]) {
      expect(reference).toMatch(AUTHORIZATION_REFERENCE);
      expect(holderNamed(reference)).toBe(holder);
      expect(Buffer.from(reference.slice(holder.length + 1), 'base64url')).toHaveLength(32);
    }
    expect(record.handle).not.toBe(record.state);
    expect(pending.byHandle(record.handle)).toBe(record);

    const untagged = new PendingAuthorizations({ ttlMs: 60_000 }).create('alice', 'docs', undefined, {});
    expect(holderNamed(untagged.handle)).toBeUndefined();
    const random = randomBytes(32).toString('base64url');
    expect(holderNamed(`a.b.${random}`)).toBeUndefined();
    expect(holderNamed(`${holder}.short`)).toBeUndefined();
    expect(holderNamed(`.${random}`)).toBeUndefined();
    expect(() => new PendingAuthorizations({ ttlMs: 1, holder: 'not/an.id' })).toThrow(/replica id/);
  });
});
