// Resolve hook: the conformance package's `fs` imports get fs-with-globsync.mjs.
const replacement = new URL('./fs-with-globsync.mjs', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  const fromConformance = context.parentURL?.includes('/@modelcontextprotocol/conformance/');
  if (fromConformance && (specifier === 'fs' || specifier === 'node:fs')) {
    return { url: replacement, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
