import { describe, expect, it } from 'vitest';
import { STABLE_AFTER_MS, backoffDelay, failuresAfterLoss } from '../../src/upstream/backoff.js';
import { classifyConnectFailure, classifyRequestFailure, describeError } from '../../src/upstream/failure-classification.js';
import { ProtocolError, ProtocolErrorCode, SdkError, SdkErrorCode, SdkHttpError } from '@modelcontextprotocol/client';
import { NoCommonVersionError, NotJsonRpcError } from '../../src/upstream/errors.js';

const httpError = (status: number) => new SdkHttpError(SdkErrorCode.ClientHttpNotImplemented, `HTTP ${status}`, { status });

const policy = { initialDelayMs: 100, maxDelayMs: 1000 };

describe('reconnect backoff', () => {
  it('doubles per attempt up to the maximum, between half and all of the ceiling', () => {
    expect([0, 1, 2, 3, 4, 10].map((n) => backoffDelay(n, policy, () => 0))).toEqual([50, 100, 200, 400, 500, 500]);
    expect([0, 1, 2, 3, 4, 10].map((n) => backoffDelay(n, policy, () => 0.999999))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay(2, policy, () => 0.5)).toBe(300);
  });

  it('does not overflow for very many attempts', () => {
    expect(backoffDelay(5000, { initialDelayMs: 1000, maxDelayMs: 30_000 }, () => 0)).toBe(15_000);
  });

  it('resets the restart budget only for a connection that was ready long enough', () => {
    expect(failuresAfterLoss(4, 1_000, 1_000 + STABLE_AFTER_MS)).toBe(0);
    expect(failuresAfterLoss(4, 1_000, 1_000 + STABLE_AFTER_MS - 1)).toBe(4);
    // a reconnect that failed part-way was never ready: no connectedAt, the count goes on
    expect(failuresAfterLoss(4, undefined, 10 * STABLE_AFTER_MS)).toBe(4);
  });
});

describe('upstream failure classification', () => {
  it('treats a missing command and refused credentials as misconfiguration, the rest as retryable', () => {
    expect(classifyConnectFailure(new Error('cannot start "x": command not found'))).toBe('misconfigured');
    expect(classifyConnectFailure(new Error('cannot start "x": permission denied'))).toBe('misconfigured');
    expect(classifyConnectFailure(httpError(401))).toBe('misconfigured');
    expect(classifyConnectFailure(httpError(403))).toBe('misconfigured');
    expect(classifyConnectFailure(new SdkHttpError(SdkErrorCode.ClientHttpForbidden, 'probe refused', { status: 403 }))).toBe('misconfigured');
    expect(classifyConnectFailure(httpError(500))).toBe('retryable');
    expect(classifyConnectFailure(new NoCommonVersionError(['2099-01-01'], ['2026-07-28']))).toBe('misconfigured');
    expect(classifyConnectFailure(new Error('process exited with code 1'))).toBe('retryable');
    expect(classifyConnectFailure('weird')).toBe('retryable');
  });

  it('tells answers, timeouts, closed connections, non-MCP bytes and lost sessions apart', () => {
    expect(classifyRequestFailure(new SdkError(SdkErrorCode.RequestTimeout, 't'), true)).toBe('cancelled');
    expect(classifyRequestFailure(new SdkError(SdkErrorCode.RequestTimeout, 't'), false)).toBe('timeout');
    expect(classifyRequestFailure(new SdkError(SdkErrorCode.ConnectionClosed, 'c'), false)).toBe('closed');
    expect(classifyRequestFailure(new ProtocolError(ProtocolErrorCode.InvalidParams, 'bad'), false)).toBe('answer');
    expect(classifyRequestFailure(new NotJsonRpcError('HTTP 200 (text/html)', '<html>'), false)).toBe('bad-response');
    expect(classifyRequestFailure(new SdkError(SdkErrorCode.InvalidResult, 'no resultType'), false)).toBe('bad-response');
    // A 404 ends a session only when the request named one (2025); else it is a refusal like any other.
    expect(classifyRequestFailure(new SdkHttpError(SdkErrorCode.ClientHttpNotImplemented, 'HTTP 404', { status: 404, sessionId: 's-1' }), false)).toBe('session-ended');
    // A client error without a JSON-RPC answer is that request's own refusal, not a fault of the upstream.
    for (const status of [400, 404, 413, 431]) expect(classifyRequestFailure(httpError(status), false)).toBe('refused');
    for (const status of [401, 403, 429, 500, 502]) expect(classifyRequestFailure(httpError(status), false)).toBe('unreachable');
    expect(classifyRequestFailure(new TypeError('fetch failed'), false)).toBe('unreachable');
  });

  it('describes failures in one line, saying what came back when it was not MCP', () => {
    expect(describeError(new SdkError(SdkErrorCode.RequestTimeout, 't'))).toBe('timed out waiting for initialize');
    expect(describeError(Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } }))).toBe('connection refused');
    expect(describeError(Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNRESET' } }))).toBe('fetch failed (ECONNRESET)');
    expect(describeError(new NotJsonRpcError('HTTP 200 (text/html)', '<html>hi</html>'))).toBe('HTTP 200 (text/html) carried something that is not JSON-RPC: "<html>hi</html>"');
    // the probe's own failure wraps the transport's, which wraps the socket's
    const refused = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    expect(describeError(new SdkError(SdkErrorCode.EraNegotiationFailed, 'Version negotiation probe failed: fetch failed', undefined, { cause: refused }))).toBe('connection refused');
    expect(describeError(42)).toBe('42');
  });
});
