// ESLint flat config: typescript-eslint's recommended rules everywhere, and no import cycles
// between the gateway's own modules (src/).
//
// The type-aware set (recommendedTypeChecked) is left out: on this repository it takes minutes
// rather than seconds, and `tsc --noEmit` already runs before the tests.
import js from '@eslint/js';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';
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
);
