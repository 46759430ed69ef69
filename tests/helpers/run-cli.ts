import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { nodeArgs } from './built-entries.js';
import { ROOT } from './gateway.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `conflux ARGS` in `cwd` with exactly the environment `env`, and waits for it to exit. */
export async function runCliIn(cwd: string, args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  const child = spawn(process.execPath, [...nodeArgs('src/cli.ts'), ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  try {
    const [code] = await once(child, 'exit');
    return { code: code as number | null, stdout, stderr };
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

/** Runs `conflux ARGS` from the repository root, as `npx conflux` would, and waits for it to exit. */
export function runCli(args: string[], env: Record<string, string>): Promise<CliResult> {
  return runCliIn(ROOT, args, { ...process.env, LOG_LEVEL: 'warn', ...env });
}
