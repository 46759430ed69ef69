import { describe, expect, it } from 'vitest';
import { classifyPost } from '../../src/gateway/inbound-classification.js';
import { plainModernRoute } from '../../src/http/plain-modern-route.js';
import { plainSessionlessCall } from '../../src/http/plain-sessionless-call.js';
import { MODERN_VERSION, modernEnvelope } from '../helpers/modern-envelope.js';

const STANDARD = { 'content-type': 'application/json', 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': 'tools/call', 'mcp-name': 'echo' };

/** The fast path's verdict on a request, classified as the endpoint classifies it. */
function verdict(body: Record<string, unknown>, headerChanges: Record<string, string | undefined> = {}) {
  const headers = requestHeaders(headerChanges);
  const route = classifyPost(headers, body);
  return plainSessionlessCall(headers, route.kind === 'legacy' ? undefined : route);
}

/** The standard headers with `changes` applied (an undefined value removes a header). */
function requestHeaders(changes: Record<string, string | undefined>): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries({ ...STANDARD, ...changes })) if (value !== undefined) headers.set(name, value);
  return headers;
}

const call = (params: Record<string, unknown> = {}, meta: Record<string, unknown> = modernEnvelope()) => ({
  jsonrpc: '2.0',
  id: 3,
  method: 'tools/call',
  params: { name: 'echo', arguments: { text: 'hi' }, ...params, _meta: meta },
});

describe('a plain sessionless tools/call', () => {
  it('is the call the handler would be given, the envelope lifted out', () => {
    expect(verdict(call())).toEqual({ id: 3, params: { name: 'echo', arguments: { text: 'hi' } }, envelope: modernEnvelope() });
    expect(verdict({ ...call(), params: { name: 'echo', _meta: modernEnvelope() } })).toEqual({ id: 3, params: { name: 'echo' }, envelope: modernEnvelope() });
    // An unrelated capability asks nothing of the client.
    expect(verdict(call({}, modernEnvelope({ experimental: {} })))).toBeDefined();
  });

  it('leaves every other request to the SDK', () => {
    const others: [string, Record<string, unknown>, Record<string, string | undefined>?][] = [
      ['another method', { ...call(), method: 'tools/list', params: { _meta: modernEnvelope() } }, { 'mcp-method': 'tools/list' }],
      ['a field beside the message', { ...call(), extra: 1 }],
      ['a task', call({ task: {} })],
      ['a retry', call({ requestState: 'x' })],
      ['input responses', call({ inputResponses: {} })],
      ['arguments that are not an object', call({ arguments: ['x'] })],
      ['a name that is not a string', call({ name: 7 })],
      ['a log level', call({}, modernEnvelope({}, { 'io.modelcontextprotocol/logLevel': 'info' }))],
      ['a progress token', call({}, modernEnvelope({}, { progressToken: 1 }))],
      ['trace context', call({}, modernEnvelope({}, { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }))],
      ['sampling declared', call({}, modernEnvelope({ sampling: {} }))],
      ['elicitation declared', call({}, modernEnvelope({ elicitation: {} }))],
      ['roots declared', call({}, modernEnvelope({ roots: {} }))],
      ['the Tasks extension declared', call({}, modernEnvelope({ extensions: { 'io.modelcontextprotocol/tasks': {} } }))],
      ['a malformed envelope', call({}, modernEnvelope({}, { 'io.modelcontextprotocol/clientInfo': 5 }))],
      ['another revision', call({}, modernEnvelope({}, { 'io.modelcontextprotocol/protocolVersion': '2027-01-01' })), { 'mcp-protocol-version': '2027-01-01' }],
      ['no envelope', { ...call(), params: { name: 'echo' } }],
      ['a body that is not JSON by its type', call(), { 'content-type': 'text/plain' }],
      ['no version header', call(), { 'mcp-protocol-version': undefined }],
      ['no method header', call(), { 'mcp-method': undefined }],
      ['no name header', call(), { 'mcp-name': undefined }],
      ['another name in the header', call(), { 'mcp-name': 'other' }],
      ['a Base64 name header', call(), { 'mcp-name': `=?base64?${btoa('echo')}?=` }],
    ];
    for (const [what, body, headers] of others) expect(verdict(body, headers), what).toBeUndefined();
  });
});

describe('a 2026-07-28 request classified on sight', () => {
  const envelope = modernEnvelope();
  const bodies: unknown[] = [
    call(),
    { jsonrpc: '2.0', id: 'x', method: 'tools/list', params: { _meta: envelope } },
    { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { cursor: 'c', _meta: envelope } },
    { jsonrpc: '2.0', id: 1, method: 'initialize', params: { _meta: envelope } },
    { jsonrpc: '2.0', id: 1.5, method: 'tools/list', params: { _meta: envelope } },
    { jsonrpc: '2.0', id: 2 ** 60, method: 'tools/list', params: { _meta: envelope } },
    { jsonrpc: '2.0', id: null, method: 'tools/list', params: { _meta: envelope } },
    { jsonrpc: '2.0', method: 'tools/list', params: { _meta: envelope } },
    { jsonrpc: '1.0', id: 1, method: 'tools/list', params: { _meta: envelope } },
    { jsonrpc: '2.0', id: 1, method: 7, params: { _meta: envelope } },
    { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: envelope }, extra: 1 },
    { jsonrpc: '2.0', id: 1, method: 'tools/list', params: [] },
    { jsonrpc: '2.0', id: 1, method: 'tools/list' },
    { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: [] } },
    { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: modernEnvelope({}, { 'io.modelcontextprotocol/protocolVersion': '2025-11-25' }) } },
    { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: modernEnvelope({}, { 'io.modelcontextprotocol/protocolVersion': 7 }) } },
    { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: modernEnvelope({}, { 'io.modelcontextprotocol/clientInfo': { name: 'c' } }) } },
    { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: modernEnvelope({}, { 'io.modelcontextprotocol/clientInfo': { name: 'c', version: 1 } }) } },
    { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: modernEnvelope({}, { 'io.modelcontextprotocol/clientInfo': { name: 'c', version: '1', title: 'C' } }) } },
    { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: modernEnvelope({}, { 'io.modelcontextprotocol/clientInfo': undefined }) } },
    { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN_VERSION } } },
    { jsonrpc: '2.0', id: -4, method: 'tools/list', params: { _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN_VERSION, 'io.modelcontextprotocol/clientCapabilities': {} } } },
    { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: modernEnvelope({ roots: {} }) } },
    { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: modernEnvelope({ roots: 'yes' }) } },
    { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: { ...envelope, 'io.modelcontextprotocol/clientCapabilities': [] } } },
    { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: modernEnvelope({}, { 'io.modelcontextprotocol/logLevel': 'loud' }) } },
    { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: modernEnvelope({}, { progressToken: {} }) } },
    { jsonrpc: '2.0', id: 1, result: {} },
    [call()],
    null,
  ];
  const headerSets: Record<string, string | undefined>[] = [
    {},
    { 'mcp-method': 'tools/list' },
    { 'mcp-method': undefined },
    { 'mcp-protocol-version': undefined },
    { 'mcp-protocol-version': '2025-11-25' },
    { 'mcp-protocol-version': '2027-01-01' },
  ];

  it('is made only where the classification makes the same', () => {
    let seen = 0;
    for (const body of bodies) {
      for (const changes of headerSets) {
        const headers = requestHeaders(changes);
        const route = plainModernRoute(headers.get('mcp-protocol-version'), headers.get('mcp-method'), body);
        if (route === undefined) continue;
        seen++;
        const classified = classifyPost(headers, body);
        expect(route, `${JSON.stringify(body)} ${JSON.stringify(changes)}`).toEqual(classified);
      }
    }
    // The common requests are recognised: a tool call and lists, each with its method header.
    expect(seen).toBe(5);
    expect(plainModernRoute(MODERN_VERSION, 'tools/call', call())).toBeDefined();
  });
});
