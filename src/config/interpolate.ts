import { basename, sep } from 'node:path';

/**
 * `${...}` references over the string values of a parsed config document. Done after parsing,
 * not on the raw text, so a variable's value can never change the document's structure.
 *
 * Understood: `${VAR}`, `${VAR:-default}` and `$$` (a literal `$`), and, so that the files of
 * VS Code and Cursor work as they are, `${env:VAR}`, `${input:ID}`, `${workspaceFolder}`,
 * `${workspaceFolderBasename}`, `${userHome}`, `${pathSeparator}` and `${/}`. A per-user
 * server's `${user.<field>}` is left for user-placeholders.ts. Anything else that starts with
 * `${` is an error rather than text sent on as it is (`"Bearer ${TOKEN"` would otherwise
 * reach the upstream as a header).
 */

export interface InterpolationProblem {
  path: (string | number)[];
  message: string;
  /** `unset`: the environment lacks a value (not required of a disabled server); `malformed`: the text is wrong. */
  kind: 'unset' | 'malformed';
  /** The reference as written, to point at it inside its string. */
  fragment: string;
}

/** An entry of VS Code's `inputs`, which VS Code prompts for and Conflux reads from the environment. */
export interface InputDeclaration {
  id: string;
  description?: string | undefined;
  default?: string | undefined;
}

export interface InterpolationContext {
  /** What `${workspaceFolder}` stands for: the project the config file belongs to. */
  workspaceFolder?: string;
  userHome?: string;
  /** VS Code's `inputs`, by id. */
  inputs?: ReadonlyMap<string, InputDeclaration>;
}

type Environment = Readonly<Record<string, string | undefined>>;

type Resolution = { value: string } | { problem: string; kind: InterpolationProblem['kind'] };

const NAME = '[A-Za-z_][A-Za-z0-9_]*';
const VARIABLE = new RegExp(`^(?:env:)?(${NAME})(?::-(.*))?$`, 's');
const USER_FIELD = /^user\.(id|sub|email|groups|token)$/;
const SUGGESTION = ' (write $${ for a literal "${")';

/** Returns the document with every reference replaced, and a problem for each unset or malformed one. */
export function interpolateEnv(
  document: unknown,
  env: Environment,
  context: InterpolationContext = {},
): { value: unknown; problems: InterpolationProblem[] } {
  const problems: InterpolationProblem[] = [];
  const walk = (node: unknown, path: (string | number)[]): unknown => {
    if (typeof node === 'string') return replaceReferences(node, env, context, path, problems);
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

function replaceReferences(text: string, env: Environment, context: InterpolationContext, path: (string | number)[], problems: InterpolationProblem[]): string {
  if (!text.includes('$')) return text;
  let out = '';
  let from = 0;
  for (let dollar = text.indexOf('$'); dollar !== -1; dollar = text.indexOf('$', from)) {
    out += text.slice(from, dollar);
    const next = text[dollar + 1];
    if (next !== '{') {
      // `$$` is one literal `$`; a `$` before anything else is just a `$`.
      out += '$';
      from = dollar + (next === '$' ? 2 : 1);
      continue;
    }
    const close = text.indexOf('}', dollar + 2);
    if (close === -1) {
      const fragment = text.slice(dollar);
      problems.push({ path, kind: 'malformed', fragment, message: `"${fragment}" is not closed with "}"${SUGGESTION}` });
      return out + fragment;
    }
    const fragment = text.slice(dollar, close + 1);
    const resolution = resolve(text.slice(dollar + 2, close), env, context);
    if ('value' in resolution) out += resolution.value;
    else problems.push({ path, kind: resolution.kind, fragment, message: resolution.problem });
    from = close + 1;
  }
  return out + text.slice(from);
}

function resolve(body: string, env: Environment, context: InterpolationContext): Resolution {
  const builtIn = builtInValue(body, context);
  if (builtIn !== undefined) return { value: builtIn };
  if (USER_FIELD.test(body)) return { value: `\${${body}}` };
  const variable = VARIABLE.exec(body);
  if (variable) {
    const [, name, fallback] = variable as unknown as [string, string, string | undefined];
    if (fallback?.includes('${')) return malformed(`"\${${body}}": a default cannot hold another reference`);
    const value = env[name];
    if (value !== undefined && value !== '') return { value };
    if (fallback !== undefined) return { value: fallback };
    return { kind: 'unset', problem: `environment variable ${name} is not set` };
  }
  if (body.startsWith('input:')) return inputValue(body.slice('input:'.length), env, context);
  return malformed(describeMalformed(body));
}

function builtInValue(body: string, context: InterpolationContext): string | undefined {
  const folder = context.workspaceFolder ?? process.cwd();
  switch (body) {
    case 'workspaceFolder':
      return folder;
    case 'workspaceFolderBasename':
      return basename(folder);
    case 'userHome':
      return context.userHome;
    case 'pathSeparator':
    case '/':
      return sep;
    default:
      return undefined;
  }
}

/**
 * VS Code prompts for an input; a gateway cannot, so the value comes from the environment
 * variable of the same name, as written or as the usual upper-case form (`github-token` →
 * `GITHUB_TOKEN`), else from the input's `default`.
 */
function inputValue(id: string, env: Environment, context: InterpolationContext): Resolution {
  const variable = environmentNameFor(id);
  if (id === '' || /\s/.test(id)) return malformed(`"\${input:${id}}" names no input`);
  const value = env[id] || env[variable];
  if (value) return { value };
  const input = context.inputs?.get(id);
  if (input?.default !== undefined) return { value: input.default };
  const what = input === undefined ? 'is not declared in "inputs"' : input.description ? `is prompted for in VS Code ("${input.description}")` : 'is prompted for in VS Code';
  return { kind: 'unset', problem: `input "${id}" ${what}; Conflux cannot prompt: set the environment variable ${variable}` };
}

/** `github-token` → `GITHUB_TOKEN`: a name a shell can export. */
function environmentNameFor(id: string): string {
  return id.replace(/[^A-Za-z0-9_]/g, '_').toUpperCase();
}

function describeMalformed(body: string): string {
  const written = `"\${${body}}"`;
  if (body.trim() === '') return `${written} names no variable${SUGGESTION}`;
  if (body.trim() !== body || /\s/.test(body)) return `${written}: no spaces inside \${...}; write \${${body.trim().replace(/\s+/g, '')}}`;
  if (/^user\./.test(body)) return `${written}: a user placeholder is one of \${user.id}, \${user.sub}, \${user.email}, \${user.groups}, \${user.token}`;
  if (body.startsWith('env:')) return `${written}: expected \${env:NAME}, NAME made of letters, digits and "_"`;
  const scheme = new RegExp(`^(${NAME}):`).exec(body)?.[1];
  if (scheme && !['config', 'command', 'input', 'workspaceFolder'].includes(scheme) && body.length > scheme.length + 1) {
    return `${written}: a default is written \${${scheme}:-${body.slice(scheme.length + 1)}}`;
  }
  if (scheme) return `${written}: "${scheme}:" references are not supported (use \${VAR}, \${env:VAR} or \${input:ID})`;
  return `${written} is not a reference: use \${VAR}, \${VAR:-default}, \${env:VAR} or \${input:ID}${SUGGESTION}`;
}

function malformed(problem: string): Resolution {
  return { kind: 'malformed', problem };
}
