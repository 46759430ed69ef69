// ESLint flat config: typescript-eslint's recommended rules everywhere, no import cycles between
// the gateway's own modules (src/), and in all TypeScript that a tsconfig covers (src/, tests/,
// bench/, scripts/, console/src/) the few type-aware rules that catch promise and error bugs.
//
// The whole type-aware set (recommendedTypeChecked) is left out: it reported about 700 findings,
// and `tsc --noEmit` already runs before the tests. The rules chosen below build type-checked
// programs (the root tsconfig.json for the Node code, console/tsconfig.json for the console),
// which takes the lint from about 12 s of CPU to about 40 s for src/ alone; covering the rest as
// well added about a quarter (`eslint .`: 73 s of CPU before, 93 s after, on a loaded machine).
// Tests are worth it: there a promise nobody awaits is an assertion or a clean-up that never ran,
// and the test passes anyway.
import js from '@eslint/js';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';
import { fileURLToPath } from 'node:url';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'coverage/', 'test-results/', '.conflux/', 'drizzle/', 'demo/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.{js,mjs}'],
    // Plain JavaScript here is Node's: config files and module hooks.
    languageOptions: { globals: { URL: 'readonly', process: 'readonly', console: 'readonly' } },
  },
  {
    rules: {
      // Unused names are tsc's job (noUnusedLocals, noUnusedParameters): one report, not two.
      '@typescript-eslint/no-unused-vars': 'off',
      // Control characters in the patterns here are the point (NUL PostgreSQL refuses, ANSI escapes).
      'no-control-regex': 'off',
    },
  },
  {
    files: ['tests/**', 'bench/**'],
    rules: {
      // Tests and the benchmark report walk untyped JSON (manifests, reports, wire bodies).
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      // The rule follows imports only into files it may parse: TypeScript, with its parser.
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      // Sources import each other as `./x.js` (NodeNext): resolve those to the `.ts` beside them.
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js', '.json'], extensionAlias: { '.js': ['.ts', '.js'] } })],
    },
    rules: {
      // A cycle makes load order decide what is initialised. Type-only imports are erased at
      // build time and do not count.
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
    },
  },
  {
    // console/vite.config.ts is in no tsconfig, so the project service has no program for it.
    files: ['src/**/*.ts', 'tests/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts', 'console/src/**/*.{ts,tsx}'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: fileURLToPath(new URL('.', import.meta.url)) } },
    rules: {
      // `await` of something that is not a promise, or a list of them, is a mistake about what a call returns.
      '@typescript-eslint/await-thenable': 'error',
      // A rejection nobody handles reaches only the process-wide handler, which cannot say what
      // failed. `void` marks one that cannot reject, or whose failure is logged where it happens (bestEffort).
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: true }],
      // An async callback where a void one is expected (a timer, an event listener, forEach) drops
      // its rejection. An async request listener for node:http in tests goes through
      // tests/helpers/async-request-listener.ts, which says where its failure goes.
      '@typescript-eslint/no-misused-promises': 'error',
      // Thrown and rejected values are errors, with a stack and a message. A signal's reason is
      // typed `any` and passed on as it is, in a rejection as in a `throw` (which only-throw-error
      // allows by default).
      '@typescript-eslint/only-throw-error': 'error',
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingAny: true }],
      // Left off: of its 53 reports in src/, 37 are methods of an interface that another
      // implementation fulfils with real I/O (memory vs Redis state and rate limits, static vs
      // OAuth credentials, the SDK's Transport and EventStore) and 16 are callbacks typed to
      // return a promise (route handlers, sendRequest). Without `async` each would need
      // `Promise.resolve(...)` by hand, and a throw in one (structuredClone, a per-user entry's
      // refusal) would reach callers that expect a rejection as a synchronous exception.
      '@typescript-eslint/require-await': 'off',
    },
  },
);
