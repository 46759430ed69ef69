import { ProtocolError, SdkError, SdkErrorCode, SdkHttpError, UnsupportedProtocolVersionError, type JSONRPCMessage } from '@modelcontextprotocol/client';
import { describe, expect, it } from 'vitest';
import { nextVerdict, noCommonVersion, offeredVersions, SPOKEN_PROTOCOL_VERSIONS } from '../../src/upstream/era-negotiation.js';
import { usableVerdict, VERDICT_HORIZON_MS } from '../../src/upstream/era-verdicts.js';
import { NotJsonRpcError } from '../../src/upstream/errors.js';
import { withoutHopMeta } from '../../src/upstream/hop-meta.js';
import { listenFilter } from '../../src/upstream/list-subscription.js';
import { encodeHeaderValue, standardHeaders } from '../../src/upstream/standard-headers.js';

const modern = { kind: 'modern' as const, discover: { supportedVersions: ['2026-07-28'], capabilities: {} } };
const legacy = { kind: 'legacy' as const };
const eraFailed = (cause?: unknown) => new SdkError(SdkErrorCode.EraNegotiationFailed, 'Version negotiation failed', undefined, cause === undefined ? undefined : { cause });
const refusal = (supported: string[]) =>
  new SdkHttpError(SdkErrorCode.ClientHttpNotImplemented, 'HTTP 400', {
    status: 400,
    text: JSON.stringify({ jsonrpc: '2.0', id: 1, error: { code: -32022, message: 'Unsupported protocol version', data: { supported, requested: '2025-11-25' } } }),
  });

describe('remembered era verdicts', () => {
  it('are used within the horizon and dropped at it', () => {
    expect(usableVerdict({ verdict: legacy, storedAt: 1_000 }, 1_000 + VERDICT_HORIZON_MS - 1)).toEqual(legacy);
    expect(usableVerdict({ verdict: legacy, storedAt: 1_000 }, 1_000 + VERDICT_HORIZON_MS)).toBeUndefined();
    expect(usableVerdict({ verdict: modern, storedAt: 5_000 }, 4_000)).toBeUndefined(); // stored in the future: a clock went back
    expect(usableVerdict(undefined, 0)).toBeUndefined();
  });
});

describe('settling the era after a failed connect', () => {
  it('probes afresh when a remembered modern verdict cannot be used, and only then', () => {
    expect(nextVerdict(eraFailed(), modern, 'streamable-http')).toEqual({ prior: undefined });
    expect(nextVerdict(new SdkError(SdkErrorCode.RequestTimeout, 't'), modern, 'streamable-http')).toBeUndefined();
  });

  it('probes afresh when a remembered legacy verdict is refused with a 2026 version Conflux speaks', () => {
    expect(nextVerdict(refusal(['2026-07-28']), legacy, 'streamable-http')).toEqual({ prior: undefined });
    expect(nextVerdict(refusal(['2099-01-01']), legacy, 'streamable-http')).toBeUndefined();
    expect(nextVerdict(new Error('process exited with code 1'), legacy, 'stdio')).toBeUndefined();
  });

  it('falls back to initialize on a fresh connection when a stdio child or a garbled answer broke the probe off', () => {
    expect(nextVerdict(eraFailed(), undefined, 'stdio')).toEqual({ prior: legacy });
    expect(nextVerdict(eraFailed(new NotJsonRpcError('HTTP 200 (text/html)', '<html>')), undefined, 'streamable-http')).toEqual({ prior: legacy });
    // an HTTP probe that failed otherwise (refused, 5xx) is an outage, not an era
    expect(nextVerdict(eraFailed(new TypeError('fetch failed')), undefined, 'streamable-http')).toBeUndefined();
  });
});

describe('no protocol version in common', () => {
  it('reads the versions a server offers from each kind of refusal', () => {
    expect(offeredVersions(refusal(['2099-01-01']))).toEqual(['2099-01-01']);
    expect(offeredVersions(new UnsupportedProtocolVersionError({ supported: ['2099-01-01', '2100-01-01'], requested: '2026-07-28' }))).toEqual(['2099-01-01', '2100-01-01']);
    expect(offeredVersions(new Error("Server's protocol version is not supported: 2023-01-01"))).toEqual(['2023-01-01']);
    expect(offeredVersions(new ProtocolError(-32602, 'bad params', { supported: ['x'] }))).toBeUndefined();
    expect(offeredVersions(new Error('connection refused'))).toBeUndefined();
  });

  it('names what the server offers and what Conflux speaks, and only when nothing matches', () => {
    const error = noCommonVersion(refusal(['2099-01-01']));
    expect(error?.message).toBe(`no protocol version in common: the server offers 2099-01-01; Conflux speaks ${SPOKEN_PROTOCOL_VERSIONS.join(', ')}`);
    expect(SPOKEN_PROTOCOL_VERSIONS.slice(0, 2)).toEqual(['2026-07-28', '2025-11-25']);
    expect(noCommonVersion(refusal(['2026-07-28']))).toBeUndefined();
    expect(noCommonVersion(new Error('other'))).toBeUndefined();
  });
});

describe('reserved _meta keys', () => {
  it('are removed, and nothing else', () => {
    const params = { name: 'x', _meta: { 'io.modelcontextprotocol/clientInfo': { name: 'c' }, progressToken: 3, trace: 't' } };
    expect(withoutHopMeta(params)).toEqual({ name: 'x', _meta: { progressToken: 3, trace: 't' } });
    expect(params._meta['io.modelcontextprotocol/clientInfo']).toEqual({ name: 'c' }); // the caller's object is left alone
    const result = { resultType: 'input_required', inputRequests: { a: {} }, requestState: 's', _meta: { 'io.modelcontextprotocol/serverInfo': { name: 's' } } };
    expect(withoutHopMeta(result)).toEqual({ resultType: 'input_required', inputRequests: { a: {} }, requestState: 's' });
  });

  it('leave a value without them as the same object', () => {
    const plain = { name: 'x', _meta: { progressToken: 1 } };
    expect(withoutHopMeta(plain)).toBe(plain);
    expect(withoutHopMeta(undefined)).toBeUndefined();
  });
});

describe('2026 request headers on Streamable HTTP', () => {
  const request = (method: string, params: Record<string, unknown>): JSONRPCMessage => ({
    jsonrpc: '2.0',
    id: 1,
    method,
    params: { ...params, _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } },
  });

  it('come from the envelope, the method and the name the method mirrors', () => {
    expect(standardHeaders(request('tools/call', { name: 'echo' }))).toEqual({ 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'echo' });
    expect(standardHeaders(request('resources/read', { uri: 'modern://readme' }))).toEqual({ 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'resources/read', 'mcp-name': 'modern://readme' });
    expect(standardHeaders(request('tools/list', {}))).toEqual({ 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/list' });
  });

  it('are not sent on 2025 traffic', () => {
    expect(standardHeaders({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo' } })).toBeUndefined();
    expect(standardHeaders({ jsonrpc: '2.0', method: 'notifications/initialized' })).toBeUndefined();
  });

  it('encode what is not plain printable ASCII', () => {
    expect(encodeHeaderValue('echo')).toBe('echo');
    expect(encodeHeaderValue('grüße')).toBe(`=?base64?${Buffer.from('grüße').toString('base64')}?=`);
    expect(encodeHeaderValue(' padded')).toMatch(/^=\?base64\?/);
    expect(encodeHeaderValue('')).toBe('=?base64??=');
  });
});

describe('the change stream filter', () => {
  it('asks for the lists the server says change, the resources subscribed to, or for nothing', () => {
    expect(listenFilter({ tools: { listChanged: true }, prompts: {}, resources: { listChanged: true } })).toEqual({ toolsListChanged: true, resourcesListChanged: true });
    expect(listenFilter({ resources: { subscribe: true } }, ['a://1', 'a://2'])).toEqual({ resourceSubscriptions: ['a://1', 'a://2'] });
    // a server that offers no subscriptions is not asked for any
    expect(listenFilter({ tools: {}, resources: {} }, ['a://1'])).toBeUndefined();
    expect(listenFilter(undefined)).toBeUndefined();
  });
});
