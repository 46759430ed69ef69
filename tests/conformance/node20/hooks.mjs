// Resolve hook: the conformance package's `fs` imports get fs-with-globsync.mjs. The 0.2.0
// pre-release is installed under the alias `conformance-2026`, so both install paths match.
const replacement = new URL('./fs-with-globsync.mjs', import.meta.url).href;
const CONFORMANCE_PATHS = ['/@modelcontextprotocol/conformance/', '/conformance-2026/'];

export async function resolve(specifier, context, nextResolve) {
  const parent = context.parentURL ?? '';
  const fromConformance = CONFORMANCE_PATHS.some((path) => parent.includes(path));
  if (fromConformance && (specifier === 'fs' || specifier === 'node:fs')) {
    return { url: replacement, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
