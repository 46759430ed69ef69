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

/** The name of `entry`'s built file: its own name, `.js` for `.ts`. */
export function builtName(entry: string): string {
  return `${basename(entry, '.ts')}.js`;
}
