/**
 * The load client's counterpart for servers that speak the older HTTP+SSE transport (a GET
 * event stream that names a message endpoint; answers arrive on the stream), for peers that
 * offer only that. Same lean approach as `Session`: hand-written JSON-RPC, keep-alive posts.
 */
import { request, type ClientRequest } from 'node:http';
import { createParser } from 'eventsource-parser';
import { post } from './load.js';

export class SseSession {
  #next = 1;
  readonly #waiting = new Map<number, (message: string) => void>();

  private constructor(
    private readonly stream: ClientRequest,
    private endpoint = '',
  ) {}

  static async open(url: string, timeoutMs = 10_000): Promise<SseSession> {
    let session!: SseSession;
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        session.stream.destroy();
        reject(new Error(`no endpoint event from ${url}`));
      }, timeoutMs);
      const stream = request(url, { headers: { accept: 'text/event-stream' } }, (res) => {
        if (res.statusCode !== 200) {
          clearTimeout(timer);
          reject(new Error(`GET ${url}: HTTP ${res.statusCode}`));
          res.resume();
          return;
        }
        const parser = createParser({
          onEvent: (event) => {
            if (event.event === 'endpoint') {
              session.endpoint = new URL(event.data, url).href;
              clearTimeout(timer);
              resolve();
            } else session.#deliver(event.data);
          },
        });
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => parser.feed(chunk));
      });
      stream.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      stream.end();
      session = new SseSession(stream);
    });
    await ready;
    try {
      await session.call('initialize', { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'bench', version: '1' } });
      const done = await post(session.endpoint, '{"jsonrpc":"2.0","method":"notifications/initialized"}');
      if (done.status >= 300) throw new Error(`initialized failed: ${done.status}`);
      return session;
    } catch (error) {
      await session.close();
      throw error;
    }
  }

  /** Sends one request; resolves with the answer's text, or throws on any error. */
  async call(method: string, params: unknown): Promise<string> {
    const id = this.#next++;
    const answered = new Promise<string>((resolve) => this.#waiting.set(id, resolve));
    const reply = await post(this.endpoint, `{"jsonrpc":"2.0","id":${id},"method":"${method}","params":${JSON.stringify(params)}}`);
    if (reply.status >= 300) {
      this.#waiting.delete(id);
      throw new Error(`${method}: HTTP ${reply.status} ${reply.body.slice(0, 200)}`);
    }
    const json = await answered;
    if (!json.includes('"result"') || json.includes('"isError":true')) throw new Error(`${method}: ${json.slice(0, 200)}`);
    return json;
  }

  async close(): Promise<void> {
    for (const resolve of this.#waiting.values()) resolve('{"error":"closed"}');
    this.#waiting.clear();
    this.stream.destroy();
  }

  #deliver(data: string): void {
    let id: unknown;
    try {
      id = (JSON.parse(data) as { id?: unknown }).id;
    } catch {
      return;
    }
    if (typeof id !== 'number') return; // a notification or a request from the server
    this.#waiting.get(id)?.(data);
    this.#waiting.delete(id);
  }
}
