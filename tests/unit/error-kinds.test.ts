import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProtocolError } from '@modelcontextprotocol/server';
import { Hono } from 'hono';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { AccessRuleError } from '../../src/auth/access-control.js';
import { AccessDeniedError } from '../../src/auth/access-policy.js';
import { ApiKeyError } from '../../src/auth/api-keys.js';
import { AuthFailure } from '../../src/auth/auth-failure.js';
import { kindOfStatus, type ErrorStatus } from '../../src/errors.js';
import { asMcpError, HiddenToolError, MCP_ANSWERS, UnknownToolError } from '../../src/gateway/error-mapping.js';
import { API_ANSWERS, ApiError, apiErrorResponse } from '../../src/http/api/api-errors.js';
import { jsonRpcRefusal } from '../../src/http/json-rpc-errors.js';
import { LimitExceededError, RateLimitedError, RateLimiterUnavailableError } from '../../src/limits/errors.js';
import { RegistryError } from '../../src/registry/errors.js';
import { UpstreamAuthError } from '../../src/upstream/auth/upstream-auth.js';
import { UpstreamBadResponseError, UpstreamConnectionLostError, UpstreamTimeoutError, UpstreamUnavailableError } from '../../src/upstream/errors.js';

const logger = pino({ level: 'silent' });
const URL_TO_OPEN = 'https://gateway.example/oauth/start/abc';

function withCause(error: Error, cause: Error): Error {
  error.cause = cause;
  return error;
}

interface Expected {
  mcp: { code: number; data?: unknown; message?: string };
  rest: { status: number; code: string; details?: unknown; message?: string; retryAfter?: string };
}

/**
 * Every typed error and what each surface answers it with: the wire results clients already
 * read. A class missing here fails the coverage test below.
 */
const CASES: readonly (readonly [Error, Expected])[] = [
  [
    new RateLimitedError('principal', 7, 'alice'),
    { mcp: { code: -32000, data: { retryAfter: 7, scope: 'principal' } }, rest: { status: 429, code: 'rate_limited', details: { retryAfter: 7, scope: 'principal' }, retryAfter: '7' } },
  ],
  [new RateLimiterUnavailableError('server'), { mcp: { code: -32000, data: { retryAfter: 1, scope: 'server' } }, rest: { status: 503, code: 'rate_limiter_unavailable', retryAfter: '1' } }],
  [new LimitExceededError('too many sessions'), { mcp: { code: -32000 }, rest: { status: 429, code: 'limit_exceeded' } }],
  [new AccessDeniedError('outside your rights'), { mcp: { code: -32003 }, rest: { status: 403, code: 'forbidden' } }],
  [new HiddenToolError('secret'), { mcp: { code: -32602, message: 'Unknown tool: "secret"' }, rest: { status: 404, code: 'not_found', message: 'no tool named "secret"' } }],
  [new UpstreamUnavailableError('alpha', 'not connected'), { mcp: { code: -32603 }, rest: { status: 502, code: 'upstream_unavailable', details: { server: 'alpha' } } }],
  [new UpstreamConnectionLostError('alpha', 'tools/call', 'EPIPE'), { mcp: { code: -32603 }, rest: { status: 502, code: 'upstream_unavailable', details: { server: 'alpha' } } }],
  [new UpstreamBadResponseError('alpha', 'tools/call', 'HTML'), { mcp: { code: -32603 }, rest: { status: 502, code: 'upstream_unavailable', details: { server: 'alpha' } } }],
  [new UpstreamTimeoutError('alpha', 'tools/call', 5000), { mcp: { code: -32603 }, rest: { status: 504, code: 'upstream_timeout', details: { server: 'alpha' } } }],
  [new AuthFailure(401, undefined, 'authentication required'), { mcp: { code: -32004 }, rest: { status: 401, code: 'unauthorized' } }],
  [new AuthFailure(401, 'invalid_token', 'expired'), { mcp: { code: -32004 }, rest: { status: 401, code: 'invalid_token' } }],
  [new AuthFailure(403, 'insufficient_scope', 'the token lacks the scope mcp'), { mcp: { code: -32003 }, rest: { status: 403, code: 'insufficient_scope' } }],
  [new AuthFailure(503, 'temporarily_unavailable', 'no jwks'), { mcp: { code: -32000 }, rest: { status: 503, code: 'temporarily_unavailable' } }],
  [new AccessRuleError(404, 'no stored grant with id 4'), { mcp: { code: -32602 }, rest: { status: 404, code: 'not_found' } }],
  [new AccessRuleError(503, 'needs a database'), { mcp: { code: -32000 }, rest: { status: 503, code: 'no_database' } }],
  [new ApiKeyError('name_taken', 'the name is taken'), { mcp: { code: -32602 }, rest: { status: 409, code: 'name_taken' } }],
  [new RegistryError(400, 'invalid_body', 'invalid server definition', [{ path: 'url', message: 'required' }]), { mcp: { code: -32602, data: [{ path: 'url', message: 'required' }] }, rest: { status: 400, code: 'invalid_body', details: [{ path: 'url', message: 'required' }] } }],
  [new RegistryError(409, 'read_only', 'defined in the config file'), { mcp: { code: -32602 }, rest: { status: 409, code: 'read_only' } }],
  [new RegistryError(404, 'not_found', 'no server named "x"'), { mcp: { code: -32602 }, rest: { status: 404, code: 'not_found' } }],
  [new RegistryError(503, 'no_database', 'needs a database'), { mcp: { code: -32000 }, rest: { status: 503, code: 'no_database' } }],
  [new ApiError(404, 'not_found', 'no route for GET /x'), { mcp: { code: -32602 }, rest: { status: 404, code: 'not_found' } }],
  [new ApiError(400, 'invalid_json', 'the request body is not valid JSON'), { mcp: { code: -32602 }, rest: { status: 400, code: 'invalid_json' } }],
  [
    new UpstreamAuthError('authorization-required', 'alpha', 'authorise first', URL_TO_OPEN),
    { mcp: { code: -32603, data: { server: 'alpha', authorizationUrl: URL_TO_OPEN } }, rest: { status: 403, code: 'authorization_required', details: { server: 'alpha', authorizationUrl: URL_TO_OPEN } } },
  ],
  [
    new UpstreamAuthError('misconfigured', 'alpha', 'no client secret'),
    { mcp: { code: -32603, data: { server: 'alpha' }, message: '"alpha" could not be authenticated to: no client secret' }, rest: { status: 502, code: 'upstream_misconfigured', details: { server: 'alpha' } } },
  ],
  [new UpstreamAuthError('failed', 'alpha', 'token endpoint down'), { mcp: { code: -32603, data: { server: 'alpha' } }, rest: { status: 502, code: 'upstream_auth_failed', details: { server: 'alpha' } } }],
  // A fault caused by the user's missing authorisation: MCP tells what to open; REST reports the fault.
  [
    withCause(new UpstreamUnavailableError('alpha', 'not authorised'), new UpstreamAuthError('authorization-required', 'alpha', 'authorise first', URL_TO_OPEN)),
    { mcp: { code: -32603, data: { server: 'alpha', authorizationUrl: URL_TO_OPEN } }, rest: { status: 502, code: 'upstream_unavailable', details: { server: 'alpha' } } },
  ],
  [new UnknownToolError('nope'), { mcp: { code: -32602, message: 'Unknown tool: "nope"' }, rest: { status: 404, code: 'not_found', message: 'no tool named "nope"' } }],
  [new ProtocolError(-32602, 'name is required'), { mcp: { code: -32602 }, rest: { status: 400, code: 'invalid_request' } }],
  [new ProtocolError(-32600, 'not a request'), { mcp: { code: -32600 }, rest: { status: 400, code: 'invalid_request' } }],
  [new ProtocolError(-32601, 'no such method'), { mcp: { code: -32601 }, rest: { status: 404, code: 'not_found' } }],
  [new ProtocolError(-32050, 'the upstream broke', { hint: 1 }), { mcp: { code: -32050, data: { hint: 1 } }, rest: { status: 502, code: 'upstream_error', details: { code: -32050 } } }],
  [new TypeError('reading "postings" of undefined'), { mcp: { code: -32603, data: { incident: expect.any(String) } }, rest: { status: 500, code: 'internal' } }],
];

/** The REST answer to `error`, through the API's own error channel. */
async function restAnswer(error: Error) {
  const app = new Hono();
  app.get('/', () => {
    throw error;
  });
  app.onError((e, c) => apiErrorResponse(c, e, logger));
  const response = await app.request('/');
  const body = (await response.json()) as { error: { code: string; message: string; details?: unknown } };
  return { status: response.status, retryAfter: response.headers.get('retry-after'), ...body.error };
}

describe('every typed error has one answer per surface', () => {
  for (const [error, expected] of CASES) {
    const label = `${error.constructor.name}: ${error.message}`;

    it(`${label} → JSON-RPC ${expected.mcp.code}`, () => {
      const answer = asMcpError(error, logger);
      expect(answer.code).toBe(expected.mcp.code);
      expect(answer.data).toEqual(expected.mcp.data);
      if (expected.mcp.message) expect(answer.message).toContain(expected.mcp.message);
      if (error instanceof UpstreamAuthError && error.kind === 'authorization-required') expect(answer.message).toContain(URL_TO_OPEN);
    });

    it(`${label} → HTTP ${expected.rest.status} ${expected.rest.code}`, async () => {
      const answer = await restAnswer(error);
      expect(answer.status).toBe(expected.rest.status);
      expect(answer.code).toBe(expected.rest.code);
      if (expected.rest.status === 500) {
        expect(answer.message).toMatch(/^Internal server error \(incident [0-9a-f-]{36}\)$/);
        return;
      }
      expect(answer.details).toEqual(expected.rest.details);
      expect(answer.message).toBe(expected.rest.message ?? error.message);
      expect(answer.retryAfter).toBe(expected.rest.retryAfter ?? null);
    });
  }

  // The refusals made on the MCP wires before a session sees the request: MCP's code and data, REST's status.
  for (const [error, expected] of CASES.filter(([e]) => e instanceof AuthFailure || e instanceof RateLimitedError)) {
    it(`${error.constructor.name}: ${error.message} → /mcp ${expected.rest.status} JSON-RPC ${expected.mcp.code}`, async () => {
      const response = jsonRpcRefusal(error as AuthFailure | RateLimitedError);
      expect(response.status).toBe(expected.rest.status);
      expect(response.headers.get('retry-after')).toBe(expected.rest.retryAfter ?? null);
      const body = (await response.json()) as { error: { code: number; message: string; data?: unknown } };
      expect(body).toEqual({ jsonrpc: '2.0', id: null, error: { code: expected.mcp.code, message: error.message, ...(expected.mcp.data === undefined ? {} : { data: expected.mcp.data }) } });
    });
  }

  it('answers an error named by its HTTP status with that status', () => {
    const statuses: ErrorStatus[] = [400, 401, 403, 404, 409, 429, 502, 503, 504];
    for (const status of statuses) expect(API_ANSWERS[kindOfStatus(status)].status, `status ${status}`).toBe(status);
  });

  it('has an MCP and a REST answer for every kind', () => {
    expect(Object.keys(MCP_ANSWERS).sort()).toEqual(Object.keys(API_ANSWERS).sort());
  });
});

/** Errors that are no `ConfluxError`, and why: each is answered by a surface of its own, or never shown to a client. */
const OUTSIDE_THE_BASE: Record<string, string> = {
  UpstreamAuthError: 'its `kind` names why the upstream refused (mapped by its own table on each surface)',
  AuthorizationRequiredError: 'an UpstreamAuthError',
  AuthorizationCallbackError: 'answered by the OAuth callback page itself',
  TokenDecryptionError: 'internal: the user is asked to authorise again',
  UnansweredRequestError: 'internal to the HTTP transport',
  NoReplicaAvailableError: 'internal: becomes an upstream fault',
  NoCommonVersionError: 'internal: a server state, reported by /servers',
  NotJsonRpcError: 'internal: becomes UpstreamBadResponseError',
  PipeClosedError: "internal to the stdio transport: reported by the child's exit, else a transport failure like a broken pipe",
  UpstreamConnectError: 'internal: a connect failure worded for the server status; retries look at its cause',
  HolderSilentError: 'internal to paused-call forwarding',
  HolderIncidentError: 'internal: crosses the bus, becomes an upstream fault',
  RemoteCallError: 'internal: restored as the error it was on the other replica',
  ReplicaUnreachableError: 'internal: becomes an upstream fault',
  SharedStateUnavailableError: 'internal: becomes an upstream fault, or a 503 at the MCP edge',
  DatabaseUnavailableError: 'startup and CLI',
  DataDirLockedError: 'startup and CLI',
  PortUnavailableError: 'startup',
  EnvironmentError: 'startup and CLI',
  EnvFileError: 'startup and CLI',
  ConfigError: 'startup, CLI and config reloads',
  GatewayAdminError: 'the CLI, which prints it',
};

/** `class X extends Y` in every source file: X → Y. */
function classParents(): Map<string, string> {
  const parents = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) {
        for (const match of readFileSync(path, 'utf8').matchAll(/^\s*(?:export\s+)?(?:abstract\s+)?class\s+(\w+)(?:<[^>]*>)?\s+extends\s+(\w+)/gm)) parents.set(match[1]!, match[2]!);
      }
    }
  };
  walk(join(import.meta.dirname, '../../src'));
  return parents;
}

describe('every error class is mapped', () => {
  const parents = classParents();
  const root = (name: string): string => {
    let current = name;
    for (let depth = 0; depth < 10 && parents.has(current) && current !== 'ConfluxError'; depth++) current = parents.get(current)!;
    return current;
  };
  const covered = new Set(CASES.map(([error]) => error.constructor.name));

  it('has a case for every ConfluxError class', () => {
    const typed = [...parents.keys()].filter((name) => name !== 'ConfluxError' && root(name) === 'ConfluxError');
    expect(typed.length).toBeGreaterThan(10);
    expect(typed.filter((name) => !covered.has(name))).toEqual([]);
  });

  it('names why any other error class is outside the base', () => {
    const untyped = [...parents.keys()].filter((name) => name !== 'ConfluxError' && root(name) === 'Error');
    expect(untyped.filter((name) => !(name in OUTSIDE_THE_BASE))).toEqual([]);
    // A class that left the source leaves this list too.
    expect(Object.keys(OUTSIDE_THE_BASE).filter((name) => !untyped.includes(name))).toEqual([]);
  });
});
