import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One HTTP request a client sent through the proxy, and what came back. */
export interface Exchange {
  method: string;
  path: string;
  /** Lower-case header names, as Node reads them. */
  headers: IncomingHttpHeaders;
  /** The request body, parsed when it is JSON. */
  body: unknown;
  /** 0 until the answer's head arrives (or when the target could not be reached). */
  status: number;
  responseHeaders: IncomingHttpHeaders;
  /** The answer's body as text, cut at RESPONSE_TEXT_LIMIT characters. */
  responseText: string;
}

export interface RecordingProxy {
  /** The proxy's URL for `path` (the target's path is kept as given). */
  urlFor(path: string): string;
  readonly exchanges: readonly Exchange[];
  /** The JSON-RPC messages clients posted, in order (batches flattened). */
  messages(): { method?: string; id?: unknown; params?: Record<string, unknown> }[];
  stop(): Promise<void>;
}

const RESPONSE_TEXT_LIMIT = 16_384;

/**
 * A transparent HTTP proxy on loopback that records every request and answer between a client
 * and `target` (an origin such as `http://127.0.0.1:1234`). Streams pass through as they arrive,
 * so SSE answers and long-lived GET streams behave as they would without it.
 */
export async function startRecordingProxy(target: string): Promise<RecordingProxy> {
  const origin = new URL(target);
  const exchanges: Exchange[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const exchange: Exchange = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body: parseBody(raw), status: 0, responseHeaders: {}, responseText: '' };
      exchanges.push(exchange);
      const forwarded = httpRequest(
        { host: origin.hostname, port: origin.port, method: req.method, path: req.url, headers: { ...req.headers, host: origin.host } },
        (answer) => {
          exchange.status = answer.statusCode ?? 0;
          exchange.responseHeaders = answer.headers;
          res.writeHead(exchange.status, answer.headers);
          res.flushHeaders();
          answer.on('data', (chunk: Buffer) => {
            if (exchange.responseText.length < RESPONSE_TEXT_LIMIT) exchange.responseText += chunk.toString('utf8');
            res.write(chunk);
          });
          answer.on('end', () => res.end());
          answer.on('error', () => res.destroy());
        },
      );
      forwarded.on('error', () => res.destroy());
      // A client that goes away (closing a GET stream) ends the forwarded request too.
      res.on('close', () => forwarded.destroy());
      forwarded.end(raw);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    urlFor: (path) => `http://127.0.0.1:${port}${path}`,
    exchanges,
    messages: () =>
      exchanges.flatMap((e) => (Array.isArray(e.body) ? e.body : e.body !== null && typeof e.body === 'object' ? [e.body] : [])) as {
        method?: string;
        id?: unknown;
        params?: Record<string, unknown>;
      }[],
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function parseBody(raw: Buffer): unknown {
  if (raw.length === 0) return undefined;
  const text = raw.toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** One line per exchange: method, path, the MCP headers, the JSON-RPC method and `_meta` keys, status and the start of the answer. */
export function transcript(exchanges: readonly Exchange[]): string {
  return exchanges
    .map((e) => {
      const mcpHeaders = Object.entries(e.headers)
        .filter(([name]) => name.startsWith('mcp-') || name === 'last-event-id')
        .map(([name, value]) => `${name}=${String(value)}`)
        .join(' ');
      const messages = Array.isArray(e.body) ? e.body : e.body !== undefined ? [e.body] : [];
      const described = messages
        .map((m: { method?: string; id?: unknown; params?: { _meta?: object } }) => {
          const meta = m.params?._meta ? ` _meta{${Object.keys(m.params._meta).join(',')}}` : '';
          return `${m.method ?? 'response'}${m.id === undefined ? '' : `#${String(m.id)}`}${meta}`;
        })
        .join(' + ');
      return `${e.method} ${e.path} [${mcpHeaders}] ${described} -> ${e.status} ${e.responseText.slice(0, 200).replace(/\s+/g, ' ')}`;
    })
    .join('\n');
}
