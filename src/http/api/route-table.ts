import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { parseJsonBody } from '../json-body.js';
import { ApiError } from './api-errors.js';
import { NAMED_SCHEMAS } from './response-schemas.js';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** One REST operation: its contract (for validation and the OpenAPI document) and its handler. */
export interface ApiRoute<P = unknown, Q = unknown, B = unknown> {
  method: Method;
  /** Hono form, e.g. `/servers/:name`. */
  path: string;
  /** Its name in the document, which generated clients take for the method's; unique. */
  operationId: string;
  summary: string;
  tag: string;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  /** The success answer's body, for the document (see `response-schemas.ts`); none for 204. */
  returns?: z.ZodType;
  /**
   * Status → description, for the document. The refusals any route may give (401, 403, 429;
   * 400 and 413 with input) are added by `openApiDocument`.
   */
  responses: Record<number, string>;
  handler: (input: { params: P; query: Q; body: B; c: Context }) => Promise<Response>;
}

/** Declares a route with its types inferred from its schemas. */
export function route<P, Q, B>(definition: ApiRoute<P, Q, B>): ApiRoute {
  return definition as unknown as ApiRoute;
}

/** Mounts every route on `app`, validating params, query and body with their zod schemas. */
export function mountRoutes(app: Hono, routes: readonly ApiRoute[], limits: { maxJsonDepth: number }): void {
  for (const r of routes) {
    app.on(r.method.toUpperCase(), r.path, async (c) => {
      const params = r.params ? check(r.params, c.req.param(), 'invalid_params') : undefined;
      const query = r.query ? check(r.query, c.req.query(), 'invalid_query') : undefined;
      let body: unknown;
      if (r.body) {
        const parsed = parseJsonBody(await c.req.text(), limits.maxJsonDepth);
        if ('problem' in parsed) {
          throw parsed.problem.kind === 'parse'
            ? new ApiError(400, 'invalid_json', 'the request body is not valid JSON')
            : new ApiError(400, 'too_deep', `the request body is ${parsed.problem.message}`);
        }
        body = check(r.body, parsed.value, 'invalid_body');
      }
      return r.handler({ params, query, body, c });
    });
  }
}

function check<T>(schema: z.ZodType<T>, value: unknown, code: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const details = result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
  throw new ApiError(400, code, details.map((d) => `${d.path || '(body)'}: ${d.message}`).join('; '), details);
}

/** The document's description of the API as a whole. */
export interface ApiInfo {
  title: string;
  version: string;
  description: string;
  license: { name: string; identifier: string };
  tags: readonly { name: string; description: string }[];
}

/** How a caller authenticates (see `auth/authenticator.ts`); any one of them will do. */
const SECURITY_SCHEMES = {
  bearer: {
    type: 'http',
    scheme: 'bearer',
    description:
      '`Authorization: Bearer <credential>`: an API key (`cfx_...`, gateway.auth.apiKeys), an HS256 JWT (gateway.auth.jwt) or an OAuth access token issued for this gateway (gateway.auth.oauth), as the gateway enables them.',
  },
  apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'An API key (`cfx_...`) in its own header, where an Authorization header is taken by something else.' },
} as const;
const AUTHENTICATED = Object.keys(SECURITY_SCHEMES).map((scheme) => ({ [scheme]: [] }));

const ERROR_BODY = { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } };
/** Refusals that any route can give, described once and referenced (`components.responses`). */
const SHARED_RESPONSES = {
  BadRequest: { description: 'Invalid parameters, query or body (`details` lists each problem)', content: ERROR_BODY },
  Unauthorized: {
    description: 'No credential, or one the gateway refuses',
    headers: { 'WWW-Authenticate': { description: 'The Bearer challenge (RFC 6750), naming the protected-resource metadata under OAuth', schema: { type: 'string' } } },
    content: ERROR_BODY,
  },
  Forbidden: { description: "The caller may not do this (role, grant or tool rule), or the request's Host or Origin is not allowed", content: ERROR_BODY },
  NotFound: { description: 'Nothing by that name that the caller may see', content: ERROR_BODY },
  PayloadTooLarge: { description: 'The body is larger than gateway.api.maxBodyBytes', content: ERROR_BODY },
  TooManyRequests: {
    description: 'A rate limit refused the request (or the caller\'s address failed authentication too often)',
    headers: { 'Retry-After': { description: 'Seconds to wait', schema: { type: 'integer' } } },
    content: ERROR_BODY,
  },
} as const;
type SharedResponse = keyof typeof SHARED_RESPONSES;

/**
 * The OpenAPI 3.1 document of `routes`, built from the same zod schemas that validate them.
 * `servers` is the relative `/`: the gateway that served the document (see `withServer`).
 */
export function openApiDocument(routes: readonly ApiRoute[], info: ApiInfo, basePath: string): Record<string, unknown> {
  const schemas = responseSchemas(routes);
  const used = new Set<string>();
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = basePath + r.path.replace(/:([A-Za-z_]+)/g, '{$1}');
    const parameters = [
      ...objectKeys(r.params).map(([name, schema]) => ({ name, in: 'path', required: true, schema })),
      ...objectKeys(r.query).map(([name, schema, required]) => ({ name, in: 'query', required, schema })),
    ];
    paths[path] ??= {};
    paths[path][r.method] = {
      operationId: r.operationId,
      summary: r.summary,
      tags: [r.tag],
      security: AUTHENTICATED,
      ...(parameters.length ? { parameters } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(r.body) } } } } : {}),
      responses: responsesOf(r, schemas.refs.get(r), used),
    };
  }
  const { tags, ...rest } = info;
  return {
    openapi: '3.1.0',
    info: rest,
    servers: [{ url: '/', description: 'The gateway that serves this document' }],
    tags,
    paths,
    components: {
      securitySchemes: SECURITY_SCHEMES,
      responses: Object.fromEntries(Object.entries(SHARED_RESPONSES).filter(([name]) => used.has(name))),
      schemas: {
        ...schemas.components,
        Error: {
          type: 'object',
          required: ['error'],
          properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' }, details: {} } } },
        },
      },
    },
  };
}

/**
 * `document` as served to a request: its server is `origin`, the one the request addressed (its
 * Host was checked by the guards), or the one a trusted proxy forwarded (see `requestOrigin`).
 */
export function withServer(document: Record<string, unknown>, origin: string): Record<string, unknown> {
  return { ...document, servers: [{ url: origin, description: 'This gateway, as the request addressed it' }] };
}

/** The responses of `r`; the shared ones it refers to are added to `used`. */
function responsesOf(r: ApiRoute, schemaRef: string | undefined, used: Set<string>): Record<string, unknown> {
  const responses: Record<string, unknown> = {};
  for (const [status, description] of Object.entries(r.responses)) {
    if (Number(status) >= 400) responses[status] = { description, content: ERROR_BODY };
    else responses[status] = schemaRef && status !== '204' ? { description, content: { 'application/json': { schema: { $ref: schemaRef } } } } : { description };
  }
  const shared: [number, SharedResponse, boolean][] = [
    [400, 'BadRequest', Boolean(r.params || r.query || r.body)],
    [401, 'Unauthorized', true],
    [403, 'Forbidden', true],
    [404, 'NotFound', Boolean(r.params)],
    [413, 'PayloadTooLarge', Boolean(r.body)],
    [429, 'TooManyRequests', true],
  ];
  for (const [status, name, applies] of shared) {
    if (!applies || status in responses) continue;
    responses[status] = { $ref: `#/components/responses/${name}` };
    used.add(name);
  }
  return responses;
}

/**
 * The success schemas as `components.schemas`: the shared ones by their names, each route's own
 * body as `<OperationId>Response`, every use of a shared one inside it as a `$ref`.
 */
function responseSchemas(routes: readonly ApiRoute[]): { components: Record<string, unknown>; refs: Map<ApiRoute, string> } {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(NAMED_SCHEMAS)) registry.add(schema, { id });
  const refs = new Map<ApiRoute, string>();
  for (const r of routes) {
    if (!r.returns) continue;
    if (!registry.has(r.returns)) registry.add(r.returns, { id: `${r.operationId[0]!.toUpperCase()}${r.operationId.slice(1)}Response` });
    refs.set(r, `#/components/schemas/${registry.get(r.returns)!.id}`);
  }
  // Answers are what a client reads: the wire form, before any parsing turns text into dates.
  const { schemas } = z.toJSONSchema(registry, { io: 'input', unrepresentable: 'any', uri: (id) => `#/components/schemas/${id}` });
  // The names are the components' keys: a fragment `$id` would be invalid JSON Schema.
  const components = Object.fromEntries(Object.entries(schemas).map(([id, { $schema: _dialect, $id: _id, ...schema }]) => [id, schema]));
  return { components, refs };
}

function jsonSchema(schema: z.ZodType): unknown {
  try {
    const { $schema: _dialect, ...json } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
    return json;
  } catch {
    return {};
  }
}

function objectKeys(schema: z.ZodType | undefined): [string, unknown, boolean][] {
  if (!schema) return [];
  const json = jsonSchema(schema) as { properties?: Record<string, unknown>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, s]) => [name, s, json.required?.includes(name) ?? false]);
}
