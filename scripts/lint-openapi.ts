/**
 * `npm run lint:openapi`: builds a gateway in this process (no listener, no upstreams), asks it
 * for `/api/v1/openapi.json` as a client would, and lints that document with Redocly's
 * recommended rules, warnings included. `--print` writes the document to stdout instead.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseConfig } from '../src/config/load.js';
import { createConflux } from '../src/conflux.js';
import { silentLogger } from '../src/observability/logger.js';

const ROOT = resolve(import.meta.dirname, '..');

async function liveDocument(): Promise<string> {
  const conflux = createConflux(parseConfig('{"servers": {}}', { source: 'lint-openapi', env: {} }), { logger: silentLogger() });
  try {
    const response = await conflux.app.request('http://127.0.0.1/api/v1/openapi.json', { headers: { host: '127.0.0.1' } });
    if (!response.ok) throw new Error(`GET /api/v1/openapi.json answered ${response.status}: ${await response.text()}`);
    return JSON.stringify(await response.json(), null, 2);
  } finally {
    await conflux.stop();
  }
}

interface LintReport {
  totals: { errors: number; warnings: number };
  problems: { ruleId: string; severity: string; message: string; location: { pointer: string }[] }[];
}

/** Redocly's verdict on `file`; its warnings count as problems too (the recommended rules warn of most). */
function lint(file: string): number {
  const redocly = join(ROOT, 'node_modules/.bin/redocly');
  const result = spawnSync(redocly, ['lint', '--extends', 'recommended', '--format', 'json', file], {
    encoding: 'utf8',
    // No usage reports or update checks: CI may have no way out, and needs none.
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
  });
  if (result.error) {
    console.error(`could not run ${redocly}: ${result.error.message} (npm ci installs it)`);
    return 1;
  }
  let report: LintReport;
  try {
    report = JSON.parse(result.stdout) as LintReport;
  } catch {
    console.error(`redocly lint exited ${result.status} without a report:\n${result.stderr}`);
    return 1;
  }
  for (const p of report.problems) console.error(`${p.severity} ${p.ruleId}: ${p.message} (${p.location.map((l) => l.pointer).join(', ')})`);
  const count = report.totals.errors + report.totals.warnings;
  console.log(count === 0 ? 'openapi.json: no problems (redocly recommended rules)' : `openapi.json: ${report.totals.errors} errors, ${report.totals.warnings} warnings`);
  return count === 0 ? 0 : 1;
}

const document = await liveDocument();
if (process.argv.includes('--print')) {
  process.stdout.write(`${document}\n`);
} else {
  const folder = mkdtempSync(join(tmpdir(), 'conflux-openapi-'));
  try {
    const file = join(folder, 'openapi.json');
    writeFileSync(file, document);
    process.exitCode = lint(file);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}
