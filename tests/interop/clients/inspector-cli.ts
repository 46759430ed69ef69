import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { InteropClient } from './interop-client.js';

const run = promisify(execFile);
const INSPECTOR = resolve(import.meta.dirname, '../../../node_modules/.bin/mcp-inspector');

/** One run of the MCP Inspector CLI: its exit code and what it printed. */
export async function inspectorRun(url: string, transport: 'http' | 'sse', args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  // The CLI keeps a catalog file; a fresh one per run keeps runs independent of each other.
  const home = await mkdtemp(join(tmpdir(), 'inspector-'));
  const env = { ...process.env, MCP_CATALOG_PATH: join(home, 'catalog.json') };
  try {
    const { stdout, stderr } = await run(INSPECTOR, ['--cli', url, '--transport', transport, ...args], { env, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

function parsed(what: string, outcome: { code: number; stdout: string; stderr: string }): unknown {
  if (outcome.code !== 0) throw new Error(`${what}: exit ${outcome.code}: ${outcome.stdout.trim() || outcome.stderr.trim()}`);
  return JSON.parse(outcome.stdout);
}

/**
 * The MCP Inspector CLI (2.12) as a client: every operation is one process that connects,
 * does one thing and exits. Tool arguments are passed as `--tool-arg key=value`. It cannot
 * answer sampling or elicitation: the CLI builds its client with `sample: false, elicit: false`
 * and declares only `roots` (and the `tasks`/`skills` extensions).
 */
export function inspectorClient(url: string, transport: 'http' | 'sse'): InteropClient {
  return {
    async listToolNames() {
      const result = parsed('tools/list', await inspectorRun(url, transport, ['--method', 'tools/list'])) as { tools: { name: string }[] };
      return result.tools.map((t) => t.name);
    },
    async callText(name, args) {
      const toolArgs = Object.entries(args).flatMap(([key, value]) => ['--tool-arg', `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`]);
      const result = parsed(`tools/call ${name}`, await inspectorRun(url, transport, ['--method', 'tools/call', '--tool-name', name, ...toolArgs])) as {
        content?: { type: string; text?: string }[];
      };
      return (result.content ?? []).map((c) => (c.type === 'text' ? (c.text ?? '') : '')).join('');
    },
    close: async () => {},
  };
}
