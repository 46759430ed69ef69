import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

// The operator console, built into dist/console and served by the gateway at /ui under a policy
// that allows no inline script or style: nothing here may be inlined into index.html.
export default defineConfig({
  root: here('.'),
  base: '/ui/',
  publicDir: false,
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  resolve: {
    // The server definition schema (src/config/schema.ts) validates the registration form as it
    // validates the API; its two Node imports have browser stand-ins.
    alias: { 'node:net': here('src/shims/node-net.ts'), 'node:url': here('src/shims/node-url.ts') },
  },
  build: {
    outDir: here('../dist/console'),
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    sourcemap: false,
    target: 'es2022',
    reportCompressedSize: false,
  },
});
