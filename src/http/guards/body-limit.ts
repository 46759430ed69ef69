import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit as streamedBodyLimit } from 'hono/body-limit';

export interface BodyLimitOptions {
  maxSize: number;
  onError: (c: Context) => Response | Promise<Response>;
}

/**
 * Refuses bodies over `maxSize` bytes. A body that declares its length is judged by the
 * header alone (Node's parser holds the sender to it), so the request is never turned into a
 * web-standard stream, which costs more than the rest of a small call. Chunked bodies are
 * counted as they arrive.
 */
export function bodyLimit(options: BodyLimitOptions): MiddlewareHandler {
  const streamed = streamedBodyLimit(options);
  return async (c, next) => {
    const length = c.req.header('content-length');
    if (length === undefined || c.req.header('transfer-encoding') !== undefined) return streamed(c, next);
    if (Number(length) > options.maxSize) return options.onError(c);
    await next();
  };
}
