import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, parseAllDocuments, stringify } from 'yaml';

/**
 * Readers for the deployment files under deploy/, so that tests can check them without Docker,
 * Compose, Helm or systemd: a Dockerfile's stages, .dockerignore matching, Compose variable
 * substitution, systemd unit files, and the subset of Helm's template language the chart uses.
 */

// ---------------------------------------------------------------- Dockerfile

export interface DockerInstruction {
  name: string;
  args: string;
}

export interface DockerStage {
  image: string;
  name: string | undefined;
  instructions: DockerInstruction[];
}

/** Stages of a Dockerfile, with continuation lines joined and `ARG` defaults substituted in `FROM`. */
export function dockerStages(text: string): DockerStage[] {
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const globalArgs = new Map<string, string>();
  const stages: DockerStage[] = [];
  for (const line of lines) {
    const [, name = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const instruction = { name: name.toUpperCase(), args: args.trim() };
    if (instruction.name === 'ARG' && stages.length === 0) {
      const [key = '', value = ''] = instruction.args.split('=');
      globalArgs.set(key, value);
    } else if (instruction.name === 'FROM') {
      const [image = '', as, stageName] = instruction.args.replace(/\$\{(\w+)\}/g, (_, v: string) => globalArgs.get(v) ?? '').split(/\s+/);
      stages.push({ image, name: as?.toUpperCase() === 'AS' ? stageName : undefined, instructions: [] });
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return stages;
}

/** `ENV A=1 B="2"` pairs of a stage, later ones winning. */
export function stageEnv(stage: DockerStage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { args } of stage.instructions.filter((i) => i.name === 'ENV')) {
    for (const [, key = '', quoted, plain] of args.matchAll(/(\w+)=(?:"([^"]*)"|(\S*))/g)) env[key] = quoted ?? plain ?? '';
  }
  return env;
}

/** The JSON (exec) form of an instruction's arguments. */
export function execForm(args: string): string[] {
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`not an exec form: ${args}`);
  return parsed;
}

/** Whether `.dockerignore` keeps `path` (relative to the context) out of the build context. */
export function dockerIgnored(patterns: readonly string[], path: string): boolean {
  let ignored = false;
  for (const raw of patterns) {
    const negated = raw.startsWith('!');
    const pattern = (negated ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, '');
    const source = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*');
    // A pattern that names a folder keeps out everything in it.
    if (new RegExp(`^${source}(/.*)?$`).test(path)) ignored = !negated;
  }
  return ignored;
}

/** The lines of a .dockerignore that are patterns. */
export function dockerIgnorePatterns(text: string): string[] {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

// ---------------------------------------------------------------- Compose

/** Compose's `${VAR}`, `${VAR:-default}` and `${VAR-default}` substitution, over every string of a document. */
export function composeInterpolate<T>(value: T, env: Readonly<Record<string, string | undefined>>): T {
  if (typeof value === 'string') {
    return value.replace(/\$\$|\$\{(\w+)(?:(:?-)([^}]*))?\}/g, (match, name: string | undefined, op: string | undefined, fallback: string | undefined) => {
      if (match === '$$') return '$';
      const set = env[name!];
      if (op === ':-') return set ? set : (fallback ?? '');
      if (op === '-') return set ?? fallback ?? '';
      return set ?? '';
    }) as T;
  }
  if (Array.isArray(value)) return value.map((v: unknown) => composeInterpolate(v, env)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, composeInterpolate(v, env)])) as T;
  }
  return value;
}

// ---------------------------------------------------------------- systemd

/** A unit file's sections, each key with every value it was given (some keys may repeat). */
export function systemdUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const line of text.replace(/\\\r?\n/g, ' ').split(/\r?\n/).map((l) => l.trim())) {
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const at = line.indexOf('=');
    if (!current || at < 0) throw new Error(`not a unit file line: ${line}`);
    const key = line.slice(0, at).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(at + 1).trim()]);
  }
  return sections;
}

// ---------------------------------------------------------------- Helm

/**
 * Renders a chart's templates with the part of Helm's language the chart uses: `.Values`,
 * `.Release`, `.Chart`, `$`, `if`/`else`/`with`/`end`, `define`/`include`, parentheses, pipes,
 * whitespace trimming and the functions below. A key the values do not have is an error (Helm
 * would print nothing), so a template cannot name a value that values.yaml lacks.
 */
export function renderChart(chartDir: string, values: unknown, release = { Name: 'conflux-test', Namespace: 'default' }): Record<string, string> {
  const chartYaml = parseYaml(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
  const root = {
    Values: values,
    Release: { ...release, Service: 'Helm' },
    Chart: { Name: chartYaml.name, Version: chartYaml.version, AppVersion: chartYaml.appVersion },
  };
  const templates = join(chartDir, 'templates');
  const files = readdirSync(templates).filter((f) => /\.(ya?ml|tpl)$/.test(f));
  const defines = new Map<string, Node[]>();
  const trees = new Map(files.map((f) => [f, parseTemplate(readFileSync(join(templates, f), 'utf8'), defines)]));
  const out: Record<string, string> = {};
  for (const [file, tree] of trees) {
    if (file.startsWith('_') || !/\.ya?ml$/.test(file)) continue;
    out[file] = renderNodes(tree, { dot: root, root }, defines);
  }
  return out;
}

/** Every document a rendering holds, as plain objects. */
export function renderedObjects(rendered: Record<string, string>): Record<string, unknown>[] {
  return Object.values(rendered).flatMap((text) =>
    parseAllDocuments(text).map((doc) => {
      if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]!.message}\n${text}`);
      return doc.toJS() as Record<string, unknown> | null;
    }),
  ).filter((o): o is Record<string, unknown> => o !== null);
}

/** Helm's merge of value overrides: maps merge, `null` removes a key, anything else replaces. */
export function mergeValues(base: unknown, override: unknown): unknown {
  if (!isMap(base) || !isMap(override)) return override;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (value === null) delete out[key];
    else out[key] = mergeValues(base[key], value);
  }
  return out;
}

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; expr: string }
  | { kind: 'if' | 'with'; expr: string; then: Node[]; else: Node[] };

interface Scope {
  dot: unknown;
  root: unknown;
}

function parseTemplate(source: string, defines: Map<string, Node[]>): Node[] {
  type Token = { kind: 'text'; text: string } | { kind: 'action'; body: string };
  const tokens: Token[] = [];
  let at = 0;
  let trimNext = false;
  for (const match of source.matchAll(/\{\{(-\s)?([\s\S]*?)(\s-)?\}\}/g)) {
    let text = source.slice(at, match.index);
    if (trimNext) text = text.replace(/^\s+/, '');
    if (match[1]) text = text.replace(/\s+$/, '');
    tokens.push({ kind: 'text', text }, { kind: 'action', body: match[2]!.trim() });
    trimNext = match[3] !== undefined;
    at = match.index + match[0].length;
  }
  const rest = source.slice(at);
  tokens.push({ kind: 'text', text: trimNext ? rest.replace(/^\s+/, '') : rest });

  let position = 0;
  const block = (): { nodes: Node[]; end: 'end' | 'else' | 'eof' } => {
    const nodes: Node[] = [];
    while (position < tokens.length) {
      const token = tokens[position++]!;
      if (token.kind === 'text') {
        if (token.text) nodes.push(token);
        continue;
      }
      const body = token.body;
      if (body.startsWith('/*')) continue;
      if (body === 'end') return { nodes, end: 'end' };
      if (body === 'else') return { nodes, end: 'else' };
      const keyword = /^(if|with|define|range)\s+([\s\S]+)$/.exec(body);
      if (!keyword) {
        nodes.push({ kind: 'action', expr: body });
        continue;
      }
      const [, word, expr = ''] = keyword;
      if (word === 'range') throw new Error('range is not in the template subset the tests render');
      const inner = block();
      if (word === 'define') {
        defines.set(JSON.parse(expr) as string, inner.nodes);
        continue;
      }
      const otherwise = inner.end === 'else' ? block().nodes : [];
      nodes.push({ kind: word as 'if' | 'with', expr, then: inner.nodes, else: otherwise });
    }
    return { nodes, end: 'eof' };
  };
  const { nodes, end } = block();
  if (end !== 'eof') throw new Error(`unbalanced {{ ${end} }}`);
  return nodes;
}

function renderNodes(nodes: readonly Node[], scope: Scope, defines: Map<string, Node[]>): string {
  let out = '';
  for (const node of nodes) {
    if (node.kind === 'text') out += node.text;
    else if (node.kind === 'action') out += printed(evaluate(node.expr, scope, defines));
    else {
      const value = evaluate(node.expr, scope, defines);
      if (truthy(value)) out += renderNodes(node.then, node.kind === 'with' ? { ...scope, dot: value } : scope, defines);
      else out += renderNodes(node.else, scope, defines);
    }
  }
  return out;
}

type ExprToken = { kind: 'string' | 'number' | 'word' | 'field'; text: string } | { kind: '(' | ')' | '|' };

function lex(expr: string): ExprToken[] {
  const tokens: ExprToken[] = [];
  const re = /\s*(?:("(?:[^"\\]|\\.)*")|(-?\d+(?:\.\d+)?)|([()|])|(\$?(?:\.[A-Za-z_]\w*)+|\.|\$)|([A-Za-z_]\w*))/gy;
  let match: RegExpExecArray | null;
  while (re.lastIndex < expr.length && (match = re.exec(expr)) !== null) {
    if (match[1] !== undefined) tokens.push({ kind: 'string', text: match[1] });
    else if (match[2] !== undefined) tokens.push({ kind: 'number', text: match[2] });
    else if (match[3] !== undefined) tokens.push({ kind: match[3] as '(' | ')' | '|' });
    else if (match[4] !== undefined) tokens.push({ kind: 'field', text: match[4] });
    else tokens.push({ kind: 'word', text: match[5]! });
  }
  if (expr.slice(re.lastIndex).trim() !== '') throw new Error(`cannot read template expression: ${expr}`);
  return tokens;
}

function evaluate(expr: string, scope: Scope, defines: Map<string, Node[]>): unknown {
  const tokens = lex(expr);
  let position = 0;
  const pipeline = (): unknown => {
    let value: unknown;
    let piped = false;
    while (position < tokens.length && tokens[position]!.kind !== ')') {
      const args: { token?: ExprToken; value?: unknown }[] = [];
      while (position < tokens.length && tokens[position]!.kind !== '|' && tokens[position]!.kind !== ')') {
        const token = tokens[position++]!;
        if (token.kind === '(') {
          args.push({ value: pipeline() });
          position++; // the ')'
        } else args.push({ token });
      }
      const head = args[0]?.token;
      if (head?.kind === 'word' && !['true', 'false', 'nil'].includes(head.text)) {
        const values = args.slice(1).map((a) => ('value' in a ? a.value : operand(a.token!, scope)));
        value = call(head.text, piped ? [...values, value] : values, defines);
      } else {
        if (args.length !== 1 || piped) throw new Error(`cannot evaluate ${expr}`);
        value = 'value' in args[0]! ? args[0]!.value : operand(head!, scope);
      }
      piped = true;
      if (tokens[position]?.kind === '|') position++;
    }
    return value;
  };
  return pipeline();
}

function operand(token: ExprToken, scope: Scope): unknown {
  if (token.kind === 'string') return JSON.parse(token.text);
  if (token.kind === 'number') return Number(token.text);
  if (token.kind === 'word') return token.text === 'true' ? true : token.text === 'false' ? false : undefined;
  if (token.kind !== 'field') throw new Error(`unexpected ${token.kind}`);
  const [start, path] = token.text.startsWith('$') ? [scope.root, token.text.slice(1)] : [scope.dot, token.text];
  let value = start;
  for (const key of path.split('.').filter(Boolean)) {
    if (!isMap(value) || !(key in value)) throw new Error(`the values have no ${token.text}`);
    value = value[key];
  }
  return value;
}

function call(name: string, args: unknown[], defines: Map<string, Node[]>): unknown {
  const text = (v: unknown) => printed(v);
  switch (name) {
    case 'include': {
      const body = defines.get(String(args[0]));
      if (!body) throw new Error(`no template named ${String(args[0])}`);
      return renderNodes(body, { dot: args[1], root: args[1] }, defines);
    }
    case 'toYaml':
      return stringify(args[0], { lineWidth: 0 }).replace(/\n$/, '');
    case 'nindent':
      return `\n${indent(Number(args[0]), text(args[1]))}`;
    case 'indent':
      return indent(Number(args[0]), text(args[1]));
    case 'quote':
      return args.map((a) => JSON.stringify(text(a))).join(' ');
    case 'default':
      return truthy(args[1]) ? args[1] : args[0];
    case 'required':
      if (args[1] === undefined || args[1] === null || args[1] === '') throw new Error(`required: ${String(args[0])}`);
      return args[1];
    case 'printf': {
      const rest = args.slice(1);
      return String(args[0]).replace(/%[sdv]/g, () => text(rest.shift()));
    }
    case 'trunc':
      return text(args[1]).slice(0, Number(args[0]));
    case 'trimSuffix':
      return text(args[1]).endsWith(String(args[0])) ? text(args[1]).slice(0, -String(args[0]).length) : text(args[1]);
    case 'contains':
      return text(args[1]).includes(String(args[0]));
    case 'sha256sum':
      return createHash('sha256').update(text(args[0])).digest('hex');
    case 'not':
      return !truthy(args[0]);
    case 'and':
      return args.find((a) => !truthy(a)) ?? args.at(-1);
    case 'or':
      return args.find((a) => truthy(a)) ?? args.at(-1);
    default:
      throw new Error(`the function ${name} is not in the template subset the tests render`);
  }
}

function indent(spaces: number, text: string): string {
  const pad = ' '.repeat(spaces);
  return pad + text.replaceAll('\n', `\n${pad}`);
}

function printed(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'object') throw new Error(`a map or list cannot be printed as is: ${JSON.stringify(value)}`);
  return String(value);
}

function truthy(value: unknown): boolean {
  if (Array.isArray(value)) return value.length > 0;
  if (isMap(value)) return Object.keys(value).length > 0;
  return Boolean(value);
}

function isMap(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
