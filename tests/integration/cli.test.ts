import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isAlive, ROOT, STDIO_FIXTURE, waitFor } from '../helpers/gateway.js';

const CLI = join(ROOT, 'src/cli.ts');

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

function startCli(args: string[], env: Record<string, string> = {}): { child: ChildProcess; output: () => Finished; done: Promise<Finished> } {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: ROOT,
    // each gateway gets its own embedded database
    env: { ...process.env, LOG_LEVEL: 'warn', CONFLUX_DATA_DIR: mkdtempSync(join(tmpdir(), 'conflux-data-')), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c) => (stdout += c));
  child.stderr!.on('data', (c) => (stderr += c));
  const output = () => ({ code: child.exitCode, stdout, stderr });
  const done = once(child, 'exit').then(([code]) => ({ code: code as number | null, stdout, stderr }));
  return { child, output, done };
}

const runCli = (args: string[], env?: Record<string, string>) => startCli(args, env).done;

async function writeConfig(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'conflux-cli-'));
  const path = join(dir, 'mcp-servers.yaml');
  await writeFile(path, text);
  return path;
}

const fixtureServer = (label: string) =>
  `  ${label}:\n    command: ${process.execPath}\n    args: ["--import", "tsx", "${STDIO_FIXTURE}", "${label}"]\n    cwd: ${ROOT}\n`;

describe('the conflux CLI', () => {
  const running: ChildProcess[] = [];
  afterEach(() => {
    for (const child of running.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  });

  it('validate: accepts a good file and lists every problem of a bad one', async () => {
    const good = await runCli(['validate', '--config', join(ROOT, 'mcp-servers.yaml')]);
    expect(good.code).toBe(0);
    expect(good.stdout).toMatch(/valid \(4 servers\)/);

    const bad = await writeConfig('servers:\n  github:\n    url: nope\n  x:\n    command: node\n    colour: red\n');
    const result = await runCli(['validate', '-c', bad]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('servers.github.url: expected a URL');
    expect(result.stderr).toContain('servers.x: unknown key "colour"');
    expect(result.stderr).not.toMatch(/at .*\.ts:\d+/); // no stack trace
  });

  it('tools and call: connect, list the merged tools and call one', async () => {
    const config = await writeConfig(`servers:\n${fixtureServer('alpha')}${fixtureServer('beta')}`);
    const tools = await runCli(['tools', '-c', config]);
    expect(tools.code).toBe(0);
    const names = tools.stdout.trim().split('\n').map((line) => line.split('\t')[0]);
    expect(names).toEqual(expect.arrayContaining(['alpha__echo', 'beta__echo', 'alpha__add', 'beta__crash']));

    const call = await runCli(['call', 'beta__add', '-c', config, '--args', '{"a": 20, "b": 22}']);
    expect(call.code).toBe(0);
    expect(JSON.parse(call.stdout)).toMatchObject({ structuredContent: { sum: 42 } });

    const unknown = await runCli(['call', 'gamma__add', '-c', config]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('Unknown tool: "gamma__add"');

    const badArgs = await runCli(['call', 'beta__add', '-c', config, '--args', '[1,2']);
    expect(badArgs.code).toBe(2);
    expect(badArgs.stderr).toMatch(/--args is not valid JSON/);
  });

  it.each([['SIGTERM'], ['SIGINT']] as const)('serve: %s stops the gateway with exit 0 and no child left', async (signal) => {
    const config = await writeConfig(`servers:\n${fixtureServer('one')}${fixtureServer('two')}`);
    const { child, done } = startCli(['serve', '-c', config, '--port', '0'], { LOG_LEVEL: 'info' });
    running.push(child);
    const pids = await upstreamPids(child, 2);
    child.kill(signal);
    const finished = await done;
    expect(finished.code).toBe(0);
    await waitFor(() => !pids.some(isAlive), 5000, 'children to exit');
  });

  it('serve: a gateway killed with SIGKILL takes its stdio children with it', async () => {
    const config = await writeConfig(`servers:\n${fixtureServer('one')}`);
    const { child, done } = startCli(['serve', '-c', config, '--port', '0'], { LOG_LEVEL: 'info' });
    running.push(child);
    const pids = await upstreamPids(child, 1);
    child.kill('SIGKILL');
    await done;
    await waitFor(() => !pids.some(isAlive), 5000, 'children to die with the gateway');
  });

  it('serve: refuses a bad port', async () => {
    const result = await runCli(['serve', '-c', join(ROOT, 'mcp-servers.yaml'), '--port', 'eighty']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('invalid port "eighty"');
  });
});

/** Reads the listening URL from the log, then the upstream pids from /servers once they are ready. */
async function upstreamPids(child: ChildProcess, count: number): Promise<number[]> {
  let log = '';
  child.stderr!.on('data', (c) => (log += c));
  let url: string | undefined;
  await waitFor(() => {
    url = /"url":"(http:[^"]+)"/.exec(log)?.[1];
    return url !== undefined;
  }, 15_000, 'the gateway to listen');
  const base = url!.replace(/\/mcp$/, '');
  let pids: number[] = [];
  await waitFor(async () => {
    const body = (await (await fetch(`${base}/servers`)).json()) as { servers: { state: string; pid?: number }[] };
    pids = body.servers.filter((s) => s.state === 'ready' && s.pid).map((s) => s.pid!);
    return pids.length === count;
  }, 15_000, 'the upstreams to be ready');
  expect(pids.every(isAlive)).toBe(true);
  return pids;
}
