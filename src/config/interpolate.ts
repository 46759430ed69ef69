/**
 * `${VAR}` and `${VAR:-default}` interpolation over the string values of a parsed config
 * document. Done after parsing, not on the raw text, so a variable's value can never
 * change the document's structure.
 */

export interface InterpolationProblem {
  path: (string | number)[];
  message: string;
}

const REFERENCE = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Returns the document with every reference replaced, and a problem for each unset variable. */
export function interpolateEnv(
  document: unknown,
  env: Readonly<Record<string, string | undefined>>,
): { value: unknown; problems: InterpolationProblem[] } {
  const problems: InterpolationProblem[] = [];
  const walk = (node: unknown, path: (string | number)[]): unknown => {
    if (typeof node === 'string') return replaceReferences(node, env, path, problems);
    if (Array.isArray(node)) return node.map((item, i) => walk(item, [...path, i]));
    if (node !== null && typeof node === 'object') {
      const out: Record<string, unknown> = {};
      for (const [key, child] of Object.entries(node)) out[key] = walk(child, [...path, key]);
      return out;
    }
    return node;
  };
  return { value: walk(document, []), problems };
}

function replaceReferences(
  text: string,
  env: Readonly<Record<string, string | undefined>>,
  path: (string | number)[],
  problems: InterpolationProblem[],
): string {
  if (!text.includes('$')) return text;
  return text.replace(REFERENCE, (match, name: string | undefined, fallback: string | undefined) => {
    if (match === '$$') return '$';
    const value = env[name!];
    if (value !== undefined && value !== '') return value;
    if (fallback !== undefined) return fallback;
    problems.push({ path, message: `environment variable ${name} is not set` });
    return '';
  });
}
