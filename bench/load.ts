/**
 * A lean MCP load client: keep-alive HTTP, JSON-RPC written by hand, so the client is not what
 * is measured. It speaks just enough Streamable HTTP: JSON or single-event SSE responses.
 */
import { Agent, request } from 'node:http';

const agent = new Agent({ keepAlive: true, maxSockets: 4096 });
const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

export interface Reply {
  status: number;
  sessionId: string | undefined;
  body: string;
  /** `performance.now()` when the last byte arrived, before the body was decoded. */
  receivedAt: number;
}

export function post(url: string, body: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { ...HEADERS, ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const receivedAt = performance.now();
        resolve({ status: res.statusCode ?? 0, sessionId: res.headers['mcp-session-id'] as string | undefined, body: Buffer.concat(chunks).toString(), receivedAt });
      });
      res.on('error', reject);
    });
    req.setNoDelay(true);
    req.on('error', reject);
    req.end(body);
  });
}

/** An MCP session over Streamable HTTP. */
export class Session {
  #next = 1;
  private constructor(
    readonly url: string,
    readonly id: string,
    readonly version: string,
    private readonly credentials: Record<string, string>,
  ) {}

  /** `credentials`: headers sent with every request (a bearer token, an API key). */
  static async open(url: string, credentials: Record<string, string> = {}): Promise<Session> {
    const init = await post(url, JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } }), credentials);
    if (init.status !== 200 || !init.sessionId) throw new Error(`initialize failed: ${init.status} ${init.body.slice(0, 200)}`);
    const session = new Session(url, init.sessionId, '2025-11-25', credentials);
    const done = await post(url, '{"jsonrpc":"2.0","method":"notifications/initialized"}', session.headers());
    if (done.status !== 202) throw new Error(`initialized failed: ${done.status}`);
    return session;
  }

  headers(): Record<string, string> {
    return { ...this.credentials, 'mcp-session-id': this.id, 'mcp-protocol-version': this.version };
  }

  /** Sends one request; resolves with the result text, or throws on any error. */
  async call(method: string, params: unknown): Promise<string> {
    return (await this.exchange(method, params)).json;
  }

  /** As `call`, with when the answer's last byte arrived (`performance.now()`), before any of it was decoded. */
  async exchange(method: string, params: unknown): Promise<{ json: string; receivedAt: number }> {
    const id = this.#next++;
    const reply = await post(this.url, `{"jsonrpc":"2.0","id":${id},"method":"${method}","params":${JSON.stringify(params)}}`, this.headers());
    if (reply.status !== 200) throw new Error(`${method}: HTTP ${reply.status} ${reply.body.slice(0, 200)}`);
    const json = reply.body.startsWith('{') ? reply.body : dataOf(reply.body);
    if (!json.includes('"result"') || json.includes('"isError":true')) throw new Error(`${method}: ${json.slice(0, 200)}`);
    return { json, receivedAt: reply.receivedAt };
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      const req = request(this.url, { method: 'DELETE', agent, headers: this.headers() }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', () => resolve());
      req.end();
    });
  }
}

/**
 * A 2026-07-28 client: no handshake and no session. Every request carries the protocol
 * envelope in `_meta` and the standard headers the revision requires (`MCP-Protocol-Version`,
 * `Mcp-Method`, and `Mcp-Name` for methods that name a tool, prompt or resource).
 */
export class StatelessClient {
  static readonly VERSION = '2026-07-28';
  #next = 1;
  constructor(
    readonly url: string,
    private readonly credentials: Record<string, string> = {},
  ) {}

  /** Sends one request; resolves with the result text, or throws on any error. */
  async call(method: string, params: Record<string, unknown>): Promise<string> {
    const id = this.#next++;
    const envelope = {
      'io.modelcontextprotocol/protocolVersion': StatelessClient.VERSION,
      'io.modelcontextprotocol/clientInfo': { name: 'bench', version: '1' },
      'io.modelcontextprotocol/clientCapabilities': {},
    };
    const body = `{"jsonrpc":"2.0","id":${id},"method":"${method}","params":${JSON.stringify({ ...params, _meta: envelope })}}`;
    const name = typeof params.name === 'string' ? params.name : typeof params.uri === 'string' ? params.uri : undefined;
    const headers: Record<string, string> = { ...this.credentials, 'mcp-protocol-version': StatelessClient.VERSION, 'mcp-method': method };
    if (name !== undefined) headers['mcp-name'] = name;
    const reply = await post(this.url, body, headers);
    if (reply.status !== 200) throw new Error(`${method}: HTTP ${reply.status} ${reply.body.slice(0, 200)}`);
    const json = reply.body.startsWith('{') ? reply.body : dataOf(reply.body);
    if (!json.includes('"result"') || json.includes('"isError":true')) throw new Error(`${method}: ${json.slice(0, 200)}`);
    return json;
  }
}

function dataOf(sse: string): string {
  const lines = sse.split('\n').filter((l) => l.startsWith('data: '));
  return lines[lines.length - 1]?.slice(6) ?? '';
}

export interface LoadResult {
  calls: number;
  errors: number;
  seconds: number;
  callsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU time the measured process spent per call in the measured window (when asked for). */
  cpuMsPerCall?: number;
  firstError?: string;
}

/**
 * `sessions` concurrent sessions, each calling `call` in a loop for `seconds` (after a warm-up).
 * `options.cpu` reads a process's CPU time in ms: it is read as the measured window starts and
 * ends, for the CPU that process spent per call.
 */
export async function runLoad(
  sessions: number,
  seconds: number,
  warmupSeconds: number,
  open: () => Promise<{ call: () => Promise<unknown>; close: () => Promise<void> }>,
  options: { openOneAtATime?: boolean; cpu?: () => number } = {},
): Promise<LoadResult> {
  const clients = [];
  if (options.openOneAtATime) for (let i = 0; i < sessions; i++) clients.push(await open());
  else clients.push(...(await Promise.all(Array.from({ length: sessions }, open))));
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const loop = async (client: { call: () => Promise<unknown> }, until: number, record: boolean) => {
    while (performance.now() < until) {
      const started = performance.now();
      try {
        await client.call();
        if (record) latencies.push(performance.now() - started);
      } catch (error) {
        if (record) errors++;
        firstError ??= (error as Error).message;
        if (!record) throw error;
      }
    }
  };
  const warmUntil = performance.now() + warmupSeconds * 1000;
  await Promise.all(clients.map((c) => loop(c, warmUntil, false)));
  const cpuBefore = options.cpu?.();
  const started = performance.now();
  const until = started + seconds * 1000;
  await Promise.all(clients.map((c) => loop(c, until, true)));
  const elapsed = (performance.now() - started) / 1000;
  const cpu = cpuBefore === undefined ? {} : { cpuMsPerCall: round((options.cpu!() - cpuBefore) / Math.max(1, latencies.length), 3) };
  await Promise.all(clients.map((c) => c.close()));
  return { calls: latencies.length, errors, seconds: round(elapsed), callsPerSecond: round(latencies.length / elapsed), ...percentiles(latencies), ...cpu, ...(firstError && errors ? { firstError } : {}) };
}

export function percentiles(values: number[]): { p50Ms: number; p99Ms: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : 0);
  return { p50Ms: round(at(0.5), 3), p99Ms: round(at(0.99), 3) };
}

export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
