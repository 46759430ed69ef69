import { z } from 'zod';
import { isLoopbackHost } from './http/guards/loopback.js';
import type { AdminBackend, ApiKeyRecord } from './admin-backend.js';
import type { AccessRules, Grant, ToolRule } from './auth/access-policy.js';
import type { ConnectionsBackend } from './admin-commands.js';
import { ApiKeyRecordSchema, ConnectionSchema, GrantSchema, ToolRuleSchema } from './http/api/response-schemas.js';

/** A refusal or failure reported by the gateway's admin API (or the gateway not answering). */
export class GatewayAdminError extends Error {
  constructor(
    /** The HTTP status; 0 when the gateway did not answer. */
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'GatewayAdminError';
  }
}

const ErrorBodySchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

/**
 * The `keys` and `access` commands through a running gateway's REST API (`/api/v1`), for when
 * that gateway holds the embedded database. `token` is an admin's API key or bearer token;
 * a gateway with `auth: none` needs none from loopback.
 */
export function gatewayAdmin(baseUrl: string, token: string | undefined): AdminBackend {
  const request = gatewayRequest(baseUrl, token);
  const ok = <T>(value: T | undefined): T => {
    if (value === undefined) throw new GatewayAdminError(204, 'bad_response', 'the gateway answered without a body');
    return value;
  };
  const subjectOf = (rule: { subjectType: string; subject: string | null }) =>
    rule.subjectType === 'user' ? { user: rule.subject! } : rule.subjectType === 'group' ? { group: rule.subject! } : {};

  return {
    async createKey(key) {
      const body = { name: key.name, subject: key.subject, groups: key.groups ?? [], expiresAt: key.expiresAt?.toISOString() };
      const { key: secret, ...record } = ok(await request('POST', '/api-keys', ApiKeyRecordSchema.extend({ key: z.string() }), body));
      return { key: secret, record };
    },
    async listKeys() {
      return ok(await request('GET', '/api-keys', z.object({ apiKeys: z.array(ApiKeyRecordSchema) }))).apiKeys;
    },
    async revokeKey(idOrName): Promise<ApiKeyRecord | undefined> {
      try {
        return ok(await request('DELETE', `/api-keys/${encodeURIComponent(idOrName)}`, ApiKeyRecordSchema));
      } catch (error) {
        if (error instanceof GatewayAdminError && error.status === 404) return undefined;
        throw error;
      }
    },
    async rules(): Promise<AccessRules> {
      const { grants } = ok(await request('GET', '/access/grants', z.object({ grants: z.array(GrantSchema) })));
      const { toolRules } = ok(await request('GET', '/access/tool-rules', z.object({ toolRules: z.array(ToolRuleSchema) })));
      return { grants, toolRules };
    },
    async addGrant(grant): Promise<Grant> {
      return ok(await request('POST', '/access/grants', GrantSchema, { ...subjectOf(grant), server: grant.server, level: grant.level }));
    },
    async addToolRule(rule): Promise<ToolRule> {
      return ok(await request('POST', '/access/tool-rules', ToolRuleSchema, { ...subjectOf(rule), server: rule.server, effect: rule.effect, pattern: rule.pattern }));
    },
    async removeGrant(id) {
      await request('DELETE', `/access/grants/${encodeURIComponent(id)}`, z.unknown());
    },
    async removeToolRule(id) {
      await request('DELETE', `/access/tool-rules/${encodeURIComponent(id)}`, z.unknown());
    },
  };
}

/**
 * `conflux connections` through a running gateway's REST API (`/api/v1/connections`): every
 * user's connections, or one user's (`user`), and revocation. Listing others' needs an admin;
 * revoking without `user` revokes the token holder's own.
 */
export function gatewayConnections(baseUrl: string, token: string | undefined): ConnectionsBackend {
  const request = gatewayRequest(baseUrl, token);
  return {
    async list(user) {
      const answer = await request('GET', `/connections?user=${encodeURIComponent(user ?? '*')}`, z.object({ connections: z.array(ConnectionSchema) }));
      if (!answer) throw new GatewayAdminError(204, 'bad_response', 'the gateway answered without a body');
      return answer.connections;
    },
    async revoke(server, user) {
      try {
        await request('DELETE', `/connections/${encodeURIComponent(server)}${user === undefined ? '' : `?user=${encodeURIComponent(user)}`}`, z.unknown());
        return true;
      } catch (error) {
        if (error instanceof GatewayAdminError && error.status === 404) return false;
        throw error;
      }
    },
  };
}

/**
 * One tool call made by the gateway at `baseUrl` (`POST /api/v1/tools/{name}/call`), which
 * routes and audits it like any other; for `conflux call` while that gateway holds the
 * embedded database.
 */
export async function gatewayToolCall(baseUrl: string, token: string | undefined, name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  const answer = await gatewayRequest(baseUrl, token)('POST', `/tools/${encodeURIComponent(name)}/call`, z.object({ result: z.record(z.string(), z.unknown()) }), args);
  if (!answer) throw new GatewayAdminError(204, 'bad_response', 'the gateway answered without a body');
  return answer.result;
}

/** A request to the gateway's REST API, its answer checked with `schema`; failures as `GatewayAdminError`. */
function gatewayRequest(baseUrl: string, token: string | undefined) {
  const api = `${baseUrl.replace(/\/$/, '')}/api/v1`;
  return async <T extends z.ZodType>(method: string, path: string, schema: T, body?: unknown): Promise<z.infer<T> | undefined> => {
    // The URL comes from a file in the data folder: a credential goes to this machine only.
    if (!isLoopbackHost(new URL(api).hostname)) {
      throw new GatewayAdminError(0, 'not_loopback', `the data folder's lock names ${baseUrl}, which is not a loopback address; the CLI sends credentials only to this machine`);
    }
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`${api}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (error) {
      const cause = (error as Error & { cause?: Error }).cause?.message ?? (error as Error).message;
      throw new GatewayAdminError(0, 'unreachable', `the gateway at ${baseUrl} does not answer: ${cause}`);
    }
    const text = await response.text();
    const json = parseJson(text);
    if (!response.ok) {
      const reported = ErrorBodySchema.safeParse(json);
      throw reported.success
        ? new GatewayAdminError(response.status, reported.data.error.code, reported.data.error.message)
        : new GatewayAdminError(response.status, 'http_error', `the gateway answered ${response.status}: ${text.slice(0, 200)}`);
    }
    if (response.status === 204) return undefined;
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new GatewayAdminError(response.status, 'bad_response', `unexpected answer from ${method} ${api}${path}: ${parsed.error.message}`);
    return parsed.data;
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
