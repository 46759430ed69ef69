import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** A lean MCP client over stdio: JSON lines in, responses matched by id. */
export class StdioClient {
  #next = 1;
  readonly #pending = new Map<number, { resolve: (line: string) => void; reject: (e: Error) => void }>();
  private constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const id = Number(/"id":(\d+)/.exec(line)?.[1]);
      const waiter = this.#pending.get(id);
      if (!waiter) return;
      this.#pending.delete(id);
      if (line.includes('"error"') || line.includes('"isError":true')) waiter.reject(new Error(line.slice(0, 200)));
      else waiter.resolve(line);
    });
  }

  static async start(command: string, args: string[], cwd: string): Promise<StdioClient> {
    const client = new StdioClient(spawn(command, args, { cwd, stdio: ['pipe', 'pipe', 'inherit'] }));
    await client.request('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } });
    client.child.stdin!.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n');
    return client;
  }

  request(method: string, params: unknown): Promise<string> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.child.stdin!.write(`{"jsonrpc":"2.0","id":${id},"method":"${method}","params":${JSON.stringify(params)}}\n`);
    });
  }

  async stop(): Promise<void> {
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.stdin!.end();
    setTimeout(() => this.child.kill('SIGKILL'), 3000).unref();
    await exited;
  }
}
