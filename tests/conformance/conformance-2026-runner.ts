/**
 * Runs the 0.2.0 pre-release of the official MCP conformance suite (installed as the alias
 * `conformance-2026`, next to 0.1.16) by requirement set: `--requirements 2025-11-25` and
 * `--requirements 2026-07-28`. A requirement set is the frozen list of scenarios a protocol
 * revision requires ("scored"), plus scenarios that are run and reported but never count
 * ("not scored": extensions, pending ones, ones added after the revision shipped).
 *
 * Results are read from each scenario's checks.json: a scenario passes when none of its checks is
 * a FAILURE or a WARNING (a scenario can also "pass" against a server that refuses everything,
 * which is why every result is compared with the fixture measured directly).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { z } from 'zod';
import { ROOT, scenarioPassed, type Check } from './conformance-runner.js';

const run = promisify(execFile);
const PACKAGE_DIR = join(ROOT, 'node_modules/conformance-2026');
const ENTRY = join(PACKAGE_DIR, 'dist/index.js');
const NODE20_SHIM = join(ROOT, 'tests/conformance/node20/register.mjs');
export const FIXTURE_V2 = join(ROOT, 'tests/fixtures/conformance-server-v2.ts');

export const REQUIREMENT_SETS = ['2025-11-25', '2026-07-28'] as const;
export type RequirementSet = (typeof REQUIREMENT_SETS)[number];

export interface RequirementResult {
  scenario: string;
  /** Required by the revision; unscored scenarios run for visibility only. */
  scored: boolean;
  checks: Check[];
  passed: boolean;
  /** Runs it took: more than one when it failed and was run again alone (see `runRequirements`). */
  attempts: number;
}

export interface RequirementRunOptions {
  /**
   * Scenarios expected to pass, run again alone (twice at most, `MAX_RERUNS` in all) when they
   * fail: the suite reads some answers within fixed windows of 500 to 1,500 ms, which a loaded
   * machine can miss. One that fails every run still fails.
   */
  expectedToPass?: (scenario: string, scored: boolean) => boolean;
}

/** Runs of a scenario expected to pass, the first included. */
const MAX_ATTEMPTS = 3;
/**
 * Runs again in one call of `runRequirements` at most: a gateway that broke many scenarios is
 * reported as it is, within the test's time, rather than retried scenario by scenario.
 */
const MAX_RERUNS = 6;

const CheckSchema = z.object({
  id: z.string(),
  status: z.string(),
  name: z.string().optional(),
  description: z.string().optional(),
  errorMessage: z.string().optional(),
});

const RequirementsFileSchema = z.object({
  server: z.array(z.string()),
  not_scored: z.array(z.object({ scenario: z.string(), leg: z.string() })).default([]),
});

/** The server scenarios a revision scores, from the suite's own frozen requirements file. */
export async function scoredScenarios(requirements: RequirementSet): Promise<Set<string>> {
  const file = RequirementsFileSchema.parse(parse(await readFile(join(PACKAGE_DIR, 'requirements', `${requirements}.yaml`), 'utf8')));
  return new Set(file.server);
}

/** Scenario name from an output folder such as `server-tools-list-2026-11-30T13-24-48-720Z`. */
export function scenarioFromDir(dir: string): string | undefined {
  return /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/.exec(dir)?.[1];
}

const CHECKS_MISSING = 'checks-json-missing';

/** A scenario that crashed before writing checks.json counts as one failed check, not as a crash of the run. */
async function readChecks(file: string): Promise<Check[]> {
  let raw: string;
  try {
    raw = await readFile(file, 'utf8');
  } catch {
    return [{ id: CHECKS_MISSING, status: 'FAILURE', errorMessage: 'the scenario ended without writing checks.json' }];
  }
  return z.array(CheckSchema).parse(JSON.parse(raw));
}

/** Runs one requirement set against `url` and returns every scenario's checks, scored first. */
export async function runRequirements(url: string, requirements: RequirementSet, options: RequirementRunOptions = {}): Promise<RequirementResult[]> {
  const scored = await scoredScenarios(requirements);
  const results: RequirementResult[] = [];
  let reruns = 0;
  for (const [scenario, checks] of await runSuite(url, ['--requirements', requirements])) {
    const result = { scenario, scored: scored.has(scenario), checks, passed: scenarioPassed(checks), attempts: 1 };
    while (!result.passed && result.attempts < MAX_ATTEMPTS && reruns < MAX_RERUNS && options.expectedToPass?.(scenario, result.scored)) {
      // Forced, as a requirement set runs them: alone, an extension's scenario is skipped.
      const again = (await runSuite(url, ['--scenario', scenario, '--spec-version', requirements, '--force'])).get(scenario);
      result.attempts++;
      reruns++;
      // A run that wrote no checks keeps the earlier ones.
      if (!again || again.some((check) => check.id === CHECKS_MISSING)) continue;
      result.checks = again;
      result.passed = scenarioPassed(again);
    }
    results.push(result);
  }
  return results.sort((a, b) => Number(b.scored) - Number(a.scored) || a.scenario.localeCompare(b.scenario));
}

/** Runs the suite's `server` command against `url` with `selection`, and returns each scenario's checks. */
async function runSuite(url: string, selection: string[]): Promise<Map<string, Check[]>> {
  const out = await mkdtemp(join(tmpdir(), 'conformance-'));
  const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${NODE20_SHIM}`.trim() };
  try {
    try {
      await run(process.execPath, [ENTRY, 'server', '--url', url, ...selection, '-o', out], { env, timeout: 300_000, maxBuffer: 64 * 1024 * 1024 });
    } catch (error) {
      // Exit code 1 means some scenario failed; the checks tell which. Anything else is a crash.
      if ((error as { code?: number }).code !== 1) throw error;
    }
    const checks = new Map<string, Check[]>();
    for (const dir of (await readdir(out)).sort()) {
      const scenario = scenarioFromDir(dir);
      if (scenario) checks.set(scenario, await readChecks(join(out, dir, 'checks.json')));
    }
    return checks;
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

/** Markdown for one requirement set: totals, then one row per scenario with both outcomes. */
export function summarizeRequirements(requirements: RequirementSet, direct: readonly RequirementResult[], gateway: readonly RequirementResult[]): string {
  const byName = new Map(gateway.map((r) => [r.scenario, r]));
  const outcome = (r: RequirementResult | undefined) => (r ? `${r.passed ? 'pass' : 'FAIL'}${r.attempts > 1 ? ` (${r.attempts} runs)` : ''}` : 'missing');
  const totals = (results: readonly RequirementResult[]) => {
    const scored = results.filter((r) => r.scored);
    const unscored = results.filter((r) => !r.scored);
    return `${scored.filter((r) => r.passed).length}/${scored.length} | ${unscored.filter((r) => r.passed).length}/${unscored.length}`;
  };
  return [
    `Requirements ${requirements}`,
    '',
    '| | scored scenarios passed | not scored, passed |',
    '|---|---|---|',
    `| fixture directly | ${totals(direct)} |`,
    `| through Conflux | ${totals(gateway)} |`,
    '',
    '| scenario | scored | direct | through Conflux |',
    '|---|---|---|---|',
    ...direct.map((r) => `| ${r.scenario} | ${r.scored ? 'yes' : 'no'} | ${outcome(r)} | ${outcome(byName.get(r.scenario))} |`),
  ].join('\n');
}
