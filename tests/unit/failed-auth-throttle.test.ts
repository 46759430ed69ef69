import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { lifetimeProblem } from '../../src/auth/token-lifetime.js';
import { clientAddressKey } from '../../src/limits/client-address.js';
import { RateLimitedError } from '../../src/limits/errors.js';
import { FailedAuthThrottle } from '../../src/limits/failed-auth-throttle.js';
import { LogSampler } from '../../src/limits/log-sampler.js';
import { MemoryRateLimiter } from '../../src/limits/rate-limiter.js';

function captured() {
  const lines: { msg: string; address?: string; reason?: string; failuresSinceLastLine?: number; refusedSinceLastLine?: number }[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

async function refusal(promise: Promise<void>): Promise<RateLimitedError | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    if (error instanceof RateLimitedError) return error;
    throw error;
  }
}

describe('failed-authentication throttle', () => {
  it('still refuses an address whose failures were pushed out of the local map by failures from many others', async () => {
    const limiter = new MemoryRateLimiter();
    const throttle = new FailedAuthThrottle(limiter, { failedAuthPerAddress: 3, windowSeconds: 60 }, { logger: captured().logger });
    for (let i = 0; i < 3; i++) await throttle.failed('2001:db8:1::1', 'bad key');
    // One attacker with a large IPv6 range: a failure from each of 10,000 other /64s.
    for (let i = 0; i < 10_000; i++) await throttle.failed(`2001:db8:2:${i.toString(16)}::1`, 'bad key');
    expect(await refusal(throttle.check('2001:db8:1::1'))).toMatchObject({ scope: 'address' });
  });

  it('refuses an address after the limit of failures until the window passes; other addresses are untouched', async () => {
    let now = 5_000 * 60_000;
    const clock = () => now;
    const limiter = new MemoryRateLimiter(clock);
    const { logger } = captured();
    let throttled = 0;
    const throttle = new FailedAuthThrottle(limiter, { failedAuthPerAddress: 3, windowSeconds: 60 }, { logger, now: clock, onThrottled: () => throttled++ });
    for (let i = 0; i < 3; i++) {
      expect(await refusal(throttle.check('203.0.113.7'))).toBeUndefined();
      await throttle.failed('203.0.113.7', 'the token signature is invalid');
    }
    const refused = await refusal(throttle.check('203.0.113.7'));
    expect(refused).toMatchObject({ scope: 'address', retryAfterSeconds: 60 });
    expect(await refusal(throttle.check('203.0.113.7'))).toBeDefined(); // answered locally now
    expect(await refusal(throttle.check('203.0.113.8'))).toBeUndefined();
    expect(throttled).toBe(2);
    now += 60_000 * 2;
    expect(await refusal(throttle.check('203.0.113.7'))).toBeUndefined();
    await limiter.close();
  });

  it('logs the first failure per address per window, then how many were left out; never more per request', async () => {
    let now = 7_000 * 60_000;
    const clock = () => now;
    const { logger, lines } = captured();
    const throttle = new FailedAuthThrottle(new MemoryRateLimiter(clock), { failedAuthPerAddress: 1000, windowSeconds: 60 }, { logger, now: clock });
    for (let i = 0; i < 50; i++) await throttle.failed('198.51.100.1', 'unknown API key');
    await throttle.failed('198.51.100.2', 'unknown API key');
    expect(lines.map((l) => [l.address, l.failuresSinceLastLine])).toEqual([
      ['198.51.100.1', undefined],
      ['198.51.100.2', undefined],
    ]);
    now += 60_000;
    await throttle.failed('198.51.100.1', 'unknown API key');
    expect(lines.at(-1)).toMatchObject({ address: '198.51.100.1', reason: 'unknown API key', failuresSinceLastLine: 49 });
  });

  it('does nothing with a limit of 0', async () => {
    const limiter = new MemoryRateLimiter();
    const throttle = new FailedAuthThrottle(limiter, { failedAuthPerAddress: 0, windowSeconds: 60 }, { logger: captured().logger });
    for (let i = 0; i < 100; i++) await throttle.failed('192.0.2.1', 'x');
    expect(await refusal(throttle.check('192.0.2.1'))).toBeUndefined();
    await limiter.close();
  });

  it('counts an IPv6 client by its /64 and an IPv4-mapped address as IPv4', () => {
    expect(clientAddressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(clientAddressKey('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(clientAddressKey('2001:0db8::1')).toBe('2001:db8:0:0::/64');
    expect(clientAddressKey('::1')).toBe('0:0:0:0::/64');
    expect(clientAddressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(clientAddressKey('::ffff:192.0.2.9')).toBe('192.0.2.9');
    expect(clientAddressKey('192.0.2.9')).toBe('192.0.2.9');
    expect(clientAddressKey('unknown')).toBe('unknown');
  });
});

describe('log sampler', () => {
  it('passes the first occurrence per key per window with the count skipped before it', () => {
    let now = 0;
    const sampler = new LogSampler(1000, () => now);
    expect(sampler.sample('a')).toBe(0);
    expect(sampler.sample('a')).toBeUndefined();
    expect(sampler.sample('a')).toBeUndefined();
    expect(sampler.sample('b')).toBe(0);
    now = 1000;
    expect(sampler.sample('a')).toBe(2);
    expect(sampler.sample('a')).toBeUndefined();
  });
});

describe('token lifetime', () => {
  const now = 1_800_000_000;
  it('accepts a lifetime within the limit, with or without iat', () => {
    expect(lifetimeProblem({ exp: now + 300, iat: now }, now, 86_400, 30)).toBeUndefined();
    expect(lifetimeProblem({ exp: now + 86_400, iat: now }, now, 86_400, 30)).toBeUndefined();
    expect(lifetimeProblem({ exp: now + 600 }, now, 86_400, 30)).toBeUndefined();
  });

  it('refuses a lifetime over the limit, measured from iat, or from now without it', () => {
    expect(lifetimeProblem({ exp: now + 86_401, iat: now }, now, 86_400, 30)).toContain('exceeds the limit of 86400s');
    expect(lifetimeProblem({ exp: now + 10 * 365 * 86_400 }, now, 86_400, 30)).toContain('gateway.auth.jwt.maxLifetimeSeconds');
  });

  it('does not let an iat in the future stretch the window', () => {
    const future = now + 10 * 365 * 86_400;
    expect(lifetimeProblem({ exp: future + 3600, iat: future }, now, 86_400, 30)).toBeDefined();
    expect(lifetimeProblem({ exp: now + 86_400 + 10, iat: now + 10 }, now, 86_400, 30)).toBeUndefined(); // issuer clock slightly ahead
  });
});
