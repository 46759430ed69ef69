import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { parseJsonBody } from '../json-body.js';
import { ApiError } from './api-errors.js';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** One REST operation: its contract (for validation and the OpenAPI document) and its handler. */
export interface ApiRoute<P = unknown, Q = unknown, B = unknown> {
  method: Method;
  /** Hono form, e.g. `/servers/:name`. */
  path: string;
  summary: string;
  tag: string;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  /** Status → description, for the document. */
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

/** The OpenAPI 3.1 document of `routes`, built from the same zod schemas that validate them. */
export function openApiDocument(routes: readonly ApiRoute[], info: { title: string; version: string }, basePath: string): unknown {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = basePath + r.path.replace(/:([A-Za-z_]+)/g, '{$1}');
    const parameters = [
      ...objectKeys(r.params).map(([name, schema]) => ({ name, in: 'path', required: true, schema })),
      ...objectKeys(r.query).map(([name, schema, required]) => ({ name, in: 'query', required, schema })),
    ];
    paths[path] ??= {};
    paths[path][r.method] = {
      summary: r.summary,
      tags: [r.tag],
      ...(parameters.length ? { parameters } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(r.body) } } } } : {}),
      responses: Object.fromEntries(
        Object.entries(r.responses).map(([status, description]) => [
          status,
          Number(status) >= 400 ? { description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } } : { description },
        ]),
      ),
    };
  }
  return {
    openapi: '3.1.0',
    info,
    paths,
    components: {
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' }, details: {} } } },
        },
      },
    },
  };
}

function jsonSchema(schema: z.ZodType): unknown {
  try {
    return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
  } catch {
    return {};
  }
}

function objectKeys(schema: z.ZodType | undefined): [string, unknown, boolean][] {
  if (!schema) return [];
  const json = jsonSchema(schema) as { properties?: Record<string, unknown>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, s]) => [name, s, json.required?.includes(name) ?? false]);
}
