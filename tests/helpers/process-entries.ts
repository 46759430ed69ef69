import { basename } from 'node:path';

/**
 * The TypeScript files tests run as processes of their own, relative to the repository root: the
 * CLI, and the fixtures started as stdio upstreams or as children. Each is built once per run to
 * `<name>.js` (tests/helpers/entry-build.ts), so names must differ; `nodeArgs`
 * (tests/helpers/built-entries.ts) refuses a file not listed here.
 */
export const PROCESS_ENTRIES: readonly string[] = [
  'src/cli.ts',
  'scripts/build-pglite-template.ts',
  'tests/fixtures/app-server.ts',
  'tests/fixtures/cluster-primary.ts',
  'tests/fixtures/coalescing-stdio-server.ts',
  'tests/fixtures/conformance-server.ts',
  'tests/fixtures/conformance-server-v2.ts',
  'tests/fixtures/embedded-creation-child.ts',
  'tests/fixtures/generation-stdio-server.ts',
  'tests/fixtures/identity-stdio-server.ts',
  'tests/fixtures/instructed-stdio-server.ts',
  'tests/fixtures/labelled-stdio-server.ts',
  'tests/fixtures/lifetime-marked-stdio-server.ts',
  'tests/fixtures/refusing-stdio-server.ts',
  'tests/fixtures/stdio-server.ts',
  'tests/fixtures/stdout-banner-server.ts',
  'tests/fixtures/tasks-server.ts',
];

/**
 * V8 flags of the processes tests start, and of vitest's workers (vitest.config.ts). Embedded PostgreSQL is WebAssembly, which V8 compiles
 * quickly first and then again, optimised, in the background for the code that runs often: a
 * test's gateway or CLI lives seconds, not long enough for the second compilation to pay, and it
 * was a third of the CPU of opening an embedded database (`conflux migrate` on a migrated folder
 * 2.5 s against 1.6 s). The product runs with V8's defaults, where long-lived processes gain from it.
 */
export const TEST_PROCESS_FLAGS: readonly string[] = ['--liftoff-only'];

/** The name of `entry`'s built file: its own name, `.js` for `.ts`. */
export function builtName(entry: string): string {
  return `${basename(entry, '.ts')}.js`;
}
