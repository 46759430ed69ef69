import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_STORED_DEPTH, redactUrlCredentials, storedArguments, type TruncatedArguments } from '../../src/observability/audit-arguments.js';
import { AuditLog, SlidingWindowBudget } from '../../src/observability/audit-log.js';

const SECRET_KEYS = /(?:pass(word)?)|(?:secret)|(?:token)|(?:api[-_]?key)/i;
const options = (extra: Partial<Parameters<typeof storedArguments>[1]> = {}) => ({ redactKey: SECRET_KEYS, maxBytes: 16_384, ...extra });

/** `{a: {a: ... {leaf: true}}}`, `depth` levels, built without recursion. */
function nested(depth: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: true };
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

function depthOf(value: unknown): number {
  let depth = 0;
  for (let v = value; v !== null && typeof v === 'object'; v = (v as { a?: unknown }).a) depth++;
  return depth;
}

/** A real pino logger whose lines are kept, to read what the audit log wrote without a database. */
function capturingLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

describe('stored arguments', () => {
  it('redacts secret-looking keys at any depth and keeps the key order', () => {
    const stored = storedArguments({ a: 1, token: 't', b: { password: 'p', list: [{ api_key: 'k', ok: 'yes' }] }, c: 'x' }, options());
    expect(stored).toEqual({ a: 1, token: '[redacted]', b: { password: '[redacted]', list: [{ api_key: '[redacted]', ok: 'yes' }] }, c: 'x' });
    expect(Object.keys(stored as object)).toEqual(['a', 'token', 'b', 'c']);
  });

  it('walks a 100,000-level argument without overflowing the stack and cuts it at the depth limit', () => {
    const stored = storedArguments(nested(100_000), options({ maxBytes: 1_000_000 }));
    expect(depthOf(stored)).toBe(MAX_STORED_DEPTH);
    expect(JSON.stringify(stored)).toContain(`[cut: nested deeper than ${MAX_STORED_DEPTH} levels]`);
    const arrays = JSON.parse('['.repeat(50_000) + ']'.repeat(50_000)) as unknown;
    expect(() => storedArguments(arrays, options())).not.toThrow();
  });

  it('keeps an argument within the byte limit as it is', () => {
    const value = { text: 'x'.repeat(1000) };
    expect(storedArguments(value, options({ maxBytes: 2000 }))).toEqual(value);
  });

  it('replaces an argument over the byte limit by a marker that fits the limit', () => {
    const big = { path: '/tmp/file', content: 'y'.repeat(100_000) };
    const stored = storedArguments(big, options({ maxBytes: 4096 })) as TruncatedArguments;
    expect(stored._truncated).toBe(true);
    expect(stored.originalBytes).toBe(Buffer.byteLength(JSON.stringify(big)));
    expect(stored.preview.startsWith('{"path":"/tmp/file","content":"yyyy')).toBe(true);
    const size = Buffer.byteLength(JSON.stringify(stored));
    expect(size).toBeLessThanOrEqual(4096);
    expect(size).toBeGreaterThan(3000);
  });

  it('fits the limit when the preview escapes badly or holds multi-byte characters', () => {
    for (const text of ['"'.repeat(50_000), '\u0001'.repeat(50_000), '😀é'.repeat(20_000)]) {
      const stored = storedArguments({ text }, options({ maxBytes: 512 })) as TruncatedArguments;
      expect(stored._truncated).toBe(true);
      expect(Buffer.byteLength(JSON.stringify(stored))).toBeLessThanOrEqual(512);
      expect(stored.preview).not.toMatch(/[\uD800-\uDBFF]$/); // never ends in half a character
    }
  });

  it('redacts a secret before the preview is cut from it', () => {
    const stored = storedArguments({ token: 'do-not-store', filler: 'z'.repeat(10_000) }, options({ maxBytes: 300 })) as TruncatedArguments;
    expect(stored.preview).toContain('"token":"[redacted]"');
    expect(JSON.stringify(stored)).not.toContain('do-not-store');
  });
});

describe('admin change arguments', () => {
  it('redacts every env and header value whatever its name, and URL credentials anywhere', () => {
    const body = {
      name: 'gh',
      transport: 'stdio',
      command: 'npx',
      args: ['server', '--db=postgres://app:hunter2@db.internal:5432/x?sslpassword=pw2'],
      env: { GITHUB: 'ghp_abcdef', PLAIN: 'value-1' },
      nested: { headers: { 'X-Custom': 'hdr-value' } },
      url: 'https://user:pass@example.com/mcp?apikey=abc123&mode=fast#frag-secret',
    };
    const stored = storedArguments(body, options({ admin: true }));
    expect(stored).toEqual({
      name: 'gh',
      transport: 'stdio',
      command: 'npx',
      args: ['server', '--db=postgres://[redacted]@db.internal:5432/x?sslpassword=[redacted]'],
      env: { GITHUB: '[redacted]', PLAIN: '[redacted]' },
      nested: { headers: { 'X-Custom': '[redacted]' } },
      url: 'https://[redacted]@example.com/mcp?apikey=[redacted]&mode=[redacted]#[redacted]',
    });
    const text = JSON.stringify(stored);
    for (const secret of ['ghp_abcdef', 'value-1', 'hdr-value', 'hunter2', 'pw2', 'user:pass', 'abc123', 'frag-secret']) expect(text).not.toContain(secret);
  });

  it('redacts the values of secret-looking flags in a command line, and leaves tool-call args alone', () => {
    const body = { name: 'gh', command: 'npx', args: ['-y', 'server', '--token', 'tok-12345678', '--API_KEY=ak-1', '-password', 'pw-2', '--port', '8080'] };
    expect(storedArguments(body, options({ admin: true }))).toEqual({
      name: 'gh',
      command: 'npx',
      args: ['-y', 'server', '--token', '[redacted]', '--API_KEY=[redacted]', '-password', '[redacted]', '--port', '8080'],
    });
    // A tool's own `args` argument is the caller's data, not a command line the operator configured.
    expect(storedArguments({ args: ['--token', 'shown'] }, options({ redactKey: /(?!)/ }))).toEqual({ args: ['--token', 'shown'] });
  });

  it('leaves URLs in tool-call arguments alone and URLs without credentials unchanged', () => {
    expect(storedArguments({ url: 'https://example.com/search?q=cats' }, options())).toEqual({ url: 'https://example.com/search?q=cats' });
    expect(redactUrlCredentials('see http://example.com:8080/mcp for details')).toBe('see http://example.com:8080/mcp for details');
    expect(redactUrlCredentials('not a url: user:pass@host')).toBe('not a url: user:pass@host');
  });
});

describe('sliding window budget', () => {
  it('allows at most the limit in any window, also across a minute boundary', () => {
    const budget = new SlidingWindowBudget(3, 60_000);
    expect([0, 1000, 59_000].map((t) => budget.take(t))).toEqual([true, true, true]);
    expect(budget.take(59_999)).toBe(false);
    expect(budget.take(60_000)).toBe(true); // the take at 0 has left the window
    expect(budget.take(60_500)).toBe(false);
    expect(budget.take(61_000)).toBe(true);
    const none = new SlidingWindowBudget(0, 60_000);
    expect(none.take(0)).toBe(false);
  });
});

describe('audit log limits', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes at most maxRefusedPerMinute refused events a minute, counts the rest, and never skips allowed calls', async () => {
    vi.useFakeTimers({ now: 0 });
    const { logger, lines } = capturingLogger();
    const audit = new AuditLog({ logger, redactKeys: [], capacity: 100, maxRefusedPerMinute: 3 });
    try {
      const base = { kind: 'tool_call' as const, principal: 'eve', channel: 'rest' as const, target: 'alpha__echo' };
      for (let i = 0; i < 6; i++) audit.record({ ...base, status: 'denied', arguments: { i } });
      audit.record({ ...base, status: 'error', error: 'rate limit exceeded' }, { refused: true });
      for (let i = 0; i < 5; i++) audit.record({ ...base, status: 'ok', arguments: { i } });
      const written = lines.filter((l) => l.msg === 'audit').map((l) => (l.audit as { status: string }).status);
      expect(written.filter((s) => s !== 'ok')).toEqual(['denied', 'denied', 'denied']);
      expect(written.filter((s) => s === 'ok')).toHaveLength(5);
      expect(audit.drops).toEqual({ bufferFull: 0, databaseRefused: 0, refusedOverLimit: 4 });
      vi.setSystemTime(60_001);
      audit.record({ ...base, status: 'denied' });
      expect(lines.filter((l) => l.msg === 'audit')).toHaveLength(9);
    } finally {
      await audit.close();
    }
  });

  it('records a call whose arguments are 10,000 levels deep instead of failing it', async () => {
    const { logger, lines } = capturingLogger();
    const audit = new AuditLog({ logger, redactKeys: ['token'], capacity: 100 });
    try {
      expect(() => audit.record({ kind: 'tool_call', principal: 'p', channel: 'mcp', target: 't', status: 'ok', arguments: nested(10_000) })).not.toThrow();
      const [line] = lines.filter((l) => l.msg === 'audit');
      expect(depthOf((line!.audit as { arguments: unknown }).arguments)).toBe(MAX_STORED_DEPTH);
    } finally {
      await audit.close();
    }
  });
});
