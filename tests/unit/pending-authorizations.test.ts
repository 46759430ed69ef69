import { describe, expect, it } from 'vitest';
import { PendingAuthorizations } from '../../src/upstream/auth/pending-authorizations.js';

describe('pending authorizations', () => {
  it('are found by their state once: a second callback with the same state finds nothing', async () => {
    const pending = new PendingAuthorizations<string>({ ttlMs: 60_000 });
    const record = pending.create('alice', 'docs', 'read', 'context');
    expect(record.state).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const taken = pending.take(record.state);
    expect(taken?.user).toBe('alice');
    expect(taken?.server).toBe('docs');
    expect(taken?.context).toBe('context');
    expect(pending.take(record.state)).toBeUndefined();
    pending.settle(taken!, { connected: true });
    await expect(record.outcome).resolves.toEqual({ connected: true });
  });

  it('expire after their time, and their waiters are told', async () => {
    let now = 0;
    const pending = new PendingAuthorizations({ ttlMs: 1000, now: () => now });
    const record = pending.create('alice', 'docs', undefined, undefined);
    now = 999;
    expect(pending.size).toBe(1);
    now = 1000;
    expect(pending.take(record.state)).toBeUndefined();
    await expect(record.outcome).resolves.toEqual({ connected: false, reason: 'the authorization was not completed in time' });
  });

  it('are bounded per user and in total, dropping the oldest', async () => {
    const pending = new PendingAuthorizations({ ttlMs: 60_000, capacity: 4, capacityPerUser: 2 });
    const a1 = pending.create('ann', 's', undefined, undefined);
    const a2 = pending.create('ann', 's', undefined, undefined);
    const a3 = pending.create('ann', 's', undefined, undefined);
    expect(pending.size).toBe(2);
    await expect(a1.outcome).resolves.toMatchObject({ connected: false });
    expect(pending.take(a1.state)).toBeUndefined();
    const others = ['bob', 'cy', 'dee'].map((user) => pending.create(user, 's', undefined, undefined));
    expect(pending.size).toBe(4);
    // The oldest of all (ann's second) made room for dee.
    expect(pending.take(a2.state)).toBeUndefined();
    expect(pending.take(a3.state)?.user).toBe('ann');
    expect(others.map((r) => pending.take(r.state)?.user)).toEqual(['bob', 'cy', 'dee']);
  });

  it('hand out a waiting authorization again for the same user, server and scope while it has time left', () => {
    let now = 0;
    const pending = new PendingAuthorizations({ ttlMs: 1000, now: () => now });
    const record = pending.create('alice', 'docs', 'read', undefined);
    expect(pending.reusable('alice', 'docs', 'read')).toBeUndefined(); // no URL yet
    record.authorizationUrl = 'https://as.example/authorize?state=x';
    expect(pending.reusable('alice', 'docs', 'read')).toBe(record);
    expect(pending.reusable('alice', 'docs', 'read write')).toBeUndefined();
    expect(pending.reusable('bob', 'docs', 'read')).toBeUndefined();
    now = 600;
    expect(pending.reusable('alice', 'docs', 'read')).toBeUndefined();
  });

  it('are named to the user by a handle that is not the state, bound to one browser once, and completed only with that binding', () => {
    const pending = new PendingAuthorizations<string>({ ttlMs: 60_000 });
    const record = pending.create('alice', 'docs', undefined, 'context');
    record.authorizationUrl = 'https://as.example/authorize?state=x';
    expect(record.handle).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(record.handle).not.toBe(record.state);
    expect(pending.byHandle(record.handle)).toBe(record);
    expect(pending.byHandle(record.state)).toBeUndefined();
    // Never confirmed: no browser can complete it.
    expect(pending.presentedBinding(record, {})).toBe(false);

    const first = pending.bind(record.handle);
    if (!first.bound) throw new Error('not bound');
    expect(first.cookie.name).toMatch(/^conflux_oauth_[0-9a-f]{16}$/);
    expect(first.cookie.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(pending.bind(record.handle)).toEqual({ bound: false, reason: 'already-bound' });
    expect(pending.bind('no-such-handle')).toEqual({ bound: false, reason: 'unknown' });
    expect(pending.isBound(record)).toBe(true);
    // Confirmed in a browser: not handed out again to another caller.
    expect(pending.reusable('alice', 'docs', undefined)).toBeUndefined();

    expect(pending.presentedBinding(record, {})).toBe(false);
    expect(pending.presentedBinding(record, { [first.cookie.name]: `${first.cookie.value}x` })).toBe(false);
    expect(pending.presentedBinding(record, { conflux_oauth_0000000000000000: first.cookie.value })).toBe(false);
    expect(pending.presentedBinding(record, { [first.cookie.name]: first.cookie.value })).toBe(true);
    expect(pending.bindingCookie(record)).toBe(first.cookie.name);
    // Nothing of the cookie's value is kept in the record.
    expect(JSON.stringify(record)).not.toContain(first.cookie.value);

    expect(pending.take(record.state)).toBe(record);
    expect(pending.byHandle(record.handle)).toBeUndefined();
    expect(pending.bind(record.handle)).toEqual({ bound: false, reason: 'unknown' });
  });

  it('forget the handles of expired records', () => {
    let now = 0;
    const pending = new PendingAuthorizations({ ttlMs: 1000, now: () => now });
    const record = pending.create('alice', 'docs', undefined, undefined);
    now = 1000;
    expect(pending.byHandle(record.handle)).toBeUndefined();
    expect(pending.bind(record.handle)).toEqual({ bound: false, reason: 'unknown' });
  });

  it('are dropped when their connection is revoked, and all when the gateway stops', async () => {
    const pending = new PendingAuthorizations({ ttlMs: 60_000 });
    const docs = pending.create('alice', 'docs', undefined, undefined);
    const wiki = pending.create('alice', 'wiki', undefined, undefined);
    pending.dropFor('alice', 'docs', 'revoked');
    await expect(docs.outcome).resolves.toEqual({ connected: false, reason: 'revoked' });
    expect(pending.take(docs.state)).toBeUndefined();
    pending.clear('stopping');
    await expect(wiki.outcome).resolves.toEqual({ connected: false, reason: 'stopping' });
    expect(pending.size).toBe(0);
  });
});
