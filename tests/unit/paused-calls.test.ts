import type { ServerContext } from '@modelcontextprotocol/server';
import { describe, expect, it } from 'vitest';
import type { Access } from '../../src/auth/access-policy.js';
import type { DownstreamCall } from '../../src/gateway/downstream-call.js';
import { ModernCallBridge } from '../../src/gateway/modern-call-bridge.js';
import { InMemoryPausedCalls, type PausedCall } from '../../src/gateway/paused-calls.js';
import { silentLogger } from '../../src/observability/logger.js';

const paused = (id: string, caller: string): PausedCall<string> => ({ record: { id, principal: caller, caller, method: 'tools/call', target: 't', asked: ['elicitation-1'] }, live: id });

describe('the paused-call store', () => {
  it('holds at most its share per caller, so that one caller cannot fill it for the others', () => {
    const store = new InMemoryPausedCalls<string>({ ttlMs: 60_000, capacity: 3, capacityPerCaller: 2, onExpired: () => {} });
    try {
      expect([store.put(paused('a1', 'ann')), store.put(paused('a2', 'ann')), store.put(paused('a3', 'ann'))]).toEqual(['held', 'held', 'caller-full']);
      expect(store.put(paused('b1', 'bob'))).toBe('held');
      expect(store.put(paused('c1', 'cy'))).toBe('full');
      // A call taken gives its caller's share back.
      expect(store.take('a1')?.live).toBe('a1');
      expect(store.put(paused('a3', 'ann'))).toBe('held');
      expect(store.size).toBe(3);
    } finally {
      store.stop();
    }
  });

  it('gives an expired call back to its caller share', () => {
    let now = 0;
    const expired: string[] = [];
    const store = new InMemoryPausedCalls<string>({ ttlMs: 1000, capacity: 10, capacityPerCaller: 1, onExpired: (call) => void expired.push(call.live), now: () => now });
    try {
      expect(store.put(paused('a1', 'ann'))).toBe('held');
      expect(store.put(paused('a2', 'ann'))).toBe('caller-full');
      now = 1000;
      expect(store.expire(now).map((c) => c.live)).toEqual(['a1']);
      expect(store.put(paused('a2', 'ann'))).toBe('held');
    } finally {
      store.stop();
    }
  });
});

describe('a call whose client leaves while its requestState is sealed', () => {
  it('is cancelled and not held', async () => {
    const bridge = new ModernCallBridge({ ttlMs: 60_000, capacity: 10, capacityPerCaller: 10, logger: silentLogger() });
    const leaving = new AbortController();
    const access = { principal: { id: 'ann' } } as unknown as Access;
    // The codec reads the caller off the context while it seals the state: the client leaves just then.
    const ctx = {
      mcpReq: { method: 'tools/call', signal: leaving.signal, requestState: () => undefined, inputResponses: undefined, _meta: undefined },
      get http() {
        leaving.abort('the client went away');
        return { authInfo: { token: 't', clientId: 'c', scopes: [], extra: { access } } };
      },
    } as unknown as ServerContext;
    let workSignal: AbortSignal | undefined;
    const call: DownstreamCall = {
      principal: 'ann',
      access,
      channel: 'mcp',
      sessionId: undefined,
      clientCapabilities: { elicitation: {} },
      signal: new AbortController().signal,
      sendNotification: async () => {},
      sendRequest: async () => ({}),
    };
    try {
      const served = bridge.serve(ctx, { target: 'alpha__ask_user', caller: 'principal:ann' }, call, async (work) => {
        workSignal = work.signal;
        await work.sendRequest({ method: 'elicitation/create', params: { message: 'Your name?' } }).catch(() => {});
        return { content: [] };
      });
      await expect(served).rejects.toBe('the client went away');
      expect(workSignal?.aborted).toBe(true);
      expect(bridge.paused).toBe(0);
    } finally {
      bridge.stop();
    }
  });
});
