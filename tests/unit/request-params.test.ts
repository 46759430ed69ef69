import { describe, expect, it } from 'vitest';
import { checkedRequest } from '../../src/gateway/request-params.js';
import { mergedCapabilities } from '../../src/gateway/session-server.js';
import type { UpstreamConnection } from '../../src/upstream/upstream-connection.js';

describe('params checked against the spec types', () => {
  it('returns the request as the spec type reads it', () => {
    expect(checkedRequest('tools/call', { name: 'a__echo', arguments: { text: 'x' }, _meta: { progressToken: 1 } })).toEqual({
      method: 'tools/call',
      params: { name: 'a__echo', arguments: { text: 'x' }, _meta: { progressToken: 1 } },
    });
    expect(checkedRequest('tools/list', undefined)).toEqual({ method: 'tools/list' });
  });

  it('refuses a mismatch with -32602 naming each field, no validator dump', () => {
    const refusal = (() => {
      try {
        checkedRequest('resources/read', { uri: 7 });
      } catch (error) {
        return error as { code: number; message: string };
      }
    })();
    expect(refusal?.code).toBe(-32602);
    expect(refusal?.message).toBe('Invalid params for resources/read: params.uri: Invalid input: expected string, received number');
    expect(() => checkedRequest('logging/setLevel', { level: 'loudest' })).toThrow(/^Invalid params for logging\/setLevel: params\.level: .*"debug"/);
  });
});

describe('capabilities by era', () => {
  const upstream = (capabilities: object | undefined) => ({ state: 'ready', capabilities }) as unknown as UpstreamConnection;
  const subscribing = [upstream({ tools: {}, resources: { subscribe: true }, logging: {} })];

  it('offer resource subscriptions to 2025 sessions only', () => {
    expect(mergedCapabilities(subscribing, 'legacy')).toEqual({ tools: { listChanged: true }, resources: { listChanged: true, subscribe: true }, logging: {} });
    expect(mergedCapabilities(subscribing, 'modern')).toEqual({ tools: { listChanged: true }, resources: { listChanged: true, subscribe: false }, logging: {} });
  });

  it('count an upstream not connected yet as offering everything', () => {
    expect(Object.keys(mergedCapabilities([upstream(undefined)], 'modern')).sort()).toEqual(['completions', 'logging', 'prompts', 'resources', 'tools']);
  });
});
