import type { MiddlewareHandler } from 'hono';
import { refusal } from './refusal.js';

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/**
 * Bodies must be `application/json`. A `text/plain`, form or multipart POST is a "simple"
 * request that browsers send cross-site without a preflight; refusing every other media type
 * means no web page can reach a handler with a body it chose. A POST without a body (a
 * restart, say) needs no content type.
 */
export function jsonContentTypeGuard(): MiddlewareHandler {
  return async (c, next) => {
    const type = c.req.header('content-type');
    const hasBody = c.req.header('transfer-encoding') !== undefined || Number(c.req.header('content-length') ?? 0) > 0;
    if ((BODY_METHODS.has(c.req.method) || hasBody) && (type !== undefined || hasBody) && !isJson(type)) {
      return refusal(c, 415, 'unsupported_media_type', 'Unsupported Media Type: Content-Type must be application/json');
    }
    await next();
  };
}

function isJson(type: string | undefined): boolean {
  return type !== undefined && type.split(';')[0]!.trim().toLowerCase() === 'application/json';
}
