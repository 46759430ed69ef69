import { defineConfig } from 'vitest/config';
import { LOAD_SCALE_VARIABLE, loadScale, measureLoadScale } from './tests/helpers/load-scale.js';
import { TEST_PROCESS_FLAGS } from './tests/helpers/process-entries.js';

// Measured as the run starts and handed to the test processes: these timeouts stretch by it, and
// the deadlines of `waitFor` and `scaled` by it or by the load when each is set, whichever is
// higher (tests/helpers/load-scale.ts). On a busy machine (other suites, installs, gateways running
// at once) the same tests take up to four times as long, and fixed limits failed tests that were
// only slow. Set CONFLUX_TEST_LOAD_SCALE to fix the run's own.
const scale = process.env[LOAD_SCALE_VARIABLE] ? loadScale : measureLoadScale();

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: Math.round(60_000 * scale),
    // Set-up starts databases and processes; on a loaded machine that takes far longer than the test.
    hookTimeout: Math.round(120_000 * scale),
    env: { [LOAD_SCALE_VARIABLE]: String(scale) },
    // A place for the migrated PGlite template the test processes share (tests/helpers/databases.ts),
    // the console built once for the tests that serve it (tests/e2e/browser.ts), and the CLI and
    // fixtures built once for the tests that run them as processes (tests/helpers/built-entries.ts).
    globalSetup: ['tests/helpers/pglite-template-setup.ts', 'tests/helpers/console-build-setup.ts', 'tests/helpers/entry-build-setup.ts'],
    pool: 'forks',
    // Files share their worker processes rather than each starting one (no test keeps state
    // between files: each has its own databases, Redis prefixes, ports and folders), and run three
    // at a time even on two cores, as most of a test's time is spent waiting on the processes and
    // servers it started (vitest would run one at a time there: one fewer than the cores).
    isolate: false,
    maxWorkers: 3,
    // As for the processes tests start (TEST_PROCESS_FLAGS, tests/helpers/process-entries.ts): the workers open dozens of
    // embedded databases, each used for seconds, and a whole run measured cheaper without V8's
    // optimising WebAssembly compiler (716 CPU-seconds against 748, processes and workers together).
    execArgv: [...TEST_PROCESS_FLAGS],
  },
});
