/**
 * Runs the official MCP conformance server suite (`@modelcontextprotocol/conformance`) twice:
 * against the conformance fixture directly, and against Conflux fronting that fixture with an
 * empty prefix. Results are read from each scenario's checks.json, not from exit codes.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { nodeArgs } from '../helpers/built-entries.js';

const run = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, '../..');
// The package's own entry, not node_modules/.bin/conformance: the 0.2.0 pre-release installed as
// `conformance-2026` ships a bin of the same name, and which one npm links there depends on the
// install path (npm install vs npm ci).
const CONFORMANCE_ENTRY = join(ROOT, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
const NODE20_SHIM = join(ROOT, 'tests/conformance/node20/register.mjs');
const FIXTURE = join(ROOT, 'tests/fixtures/conformance-server.ts');

export interface Check {
  id: string;
  status: string;
  name?: string;
  description?: string;
  errorMessage?: string;
}

export interface ScenarioResult {
  scenario: string;
  checks: Check[];
  passed: boolean;
}

/** A scenario passes when none of its checks failed or warned. */
export function scenarioPassed(checks: readonly Check[]): boolean {
  return checks.every((c) => c.status !== 'FAILURE' && c.status !== 'WARNING');
}

/** Runs one suite against `url` and returns every scenario's checks. */
export async function runSuite(url: string, suite: 'active' | 'all' = 'active'): Promise<ScenarioResult[]> {
  const out = await mkdtemp(join(tmpdir(), 'conformance-'));
  const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${NODE20_SHIM}`.trim() };
  try {
    await run(process.execPath, [CONFORMANCE_ENTRY, 'server', '--url', url, '--suite', suite, '-o', out], { env, timeout: 300_000, maxBuffer: 64 * 1024 * 1024 });
  } catch (error) {
    // Exit code 1 means some scenario failed; the checks tell which. Anything else is a crash.
    if ((error as { code?: number }).code !== 1) throw error;
  }
  const results: ScenarioResult[] = [];
  for (const dir of (await readdir(out)).sort()) {
    const match = /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/.exec(dir);
    if (!match) continue;
    const checks = JSON.parse(await readFile(join(out, dir, 'checks.json'), 'utf8')) as Check[];
    results.push({ scenario: match[1]!, checks, passed: scenarioPassed(checks) });
  }
  return results;
}

export interface RunningFixture {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Starts a conformance fixture server (the v1 one unless `fixture` names another) on a free loopback port. */
export async function startFixture(fixture: string = FIXTURE): Promise<RunningFixture> {
  const child = spawn(process.execPath, [...nodeArgs(fixture), '--port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error('the conformance fixture did not start')), 20_000);
    child.once('exit', (code) => reject(new Error(`the conformance fixture exited with ${code}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const found = /listening (http:\S+)/.exec(line);
      if (found) {
        clearTimeout(timer);
        resolveUrl(found[1]!);
      }
    });
  });
  return {
    url,
    child,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Markdown lines: one row per scenario with both outcomes, and the totals. */
export function summarize(direct: readonly ScenarioResult[], gateway: readonly ScenarioResult[]): string {
  const byName = new Map(gateway.map((r) => [r.scenario, r]));
  const count = (results: readonly ScenarioResult[]) => ({
    scenarios: results.filter((r) => r.passed).length,
    checks: results.reduce((n, r) => n + r.checks.filter((c) => c.status === 'SUCCESS').length, 0),
    totalChecks: results.reduce((n, r) => n + r.checks.length, 0),
  });
  const d = count(direct);
  const g = count(gateway);
  const rows = direct.map((r) => {
    const through = byName.get(r.scenario);
    return `| ${r.scenario} | ${r.passed ? 'pass' : 'FAIL'} | ${through ? (through.passed ? 'pass' : 'FAIL') : 'missing'} |`;
  });
  return [
    `| | scenarios passed | checks passed |`,
    `|---|---|---|`,
    `| fixture directly | ${d.scenarios}/${direct.length} | ${d.checks}/${d.totalChecks} |`,
    `| through Conflux | ${g.scenarios}/${gateway.length} | ${g.checks}/${g.totalChecks} |`,
    '',
    `| scenario | direct | through Conflux |`,
    `|---|---|---|`,
    ...rows,
  ].join('\n');
}
