import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';

/** 1-based, as editors and `file:line:column` links count. */
export interface SourcePosition {
  line: number;
  column: number;
}

export interface SyntaxProblem {
  message: string;
  position: SourcePosition;
}

export interface PositionQuery {
  /** Point at the key of the last segment (an unknown key) rather than at its value. */
  key?: boolean;
  /** Point inside the string value, at the first occurrence of this text (a malformed `${`). */
  fragment?: string;
}

/** A config text parsed with every node's place in it remembered. */
export interface ParsedSource {
  /** The plain value; `undefined` when the text holds nothing. */
  document: unknown;
  /** Every syntax error, not only the first; when there are any, `document` is not to be used. */
  errors: SyntaxProblem[];
  warnings: SyntaxProblem[];
  /**
   * Where the value at `path` is written. A path that leads further than the text goes (a
   * required key left out) gives the key of the deepest entry it reaches.
   */
  positionOf(path: readonly PropertyKey[], query?: PositionQuery): SourcePosition | undefined;
}

/**
 * Parses YAML, or JSON (which is YAML) with the comments and trailing commas that VS Code's
 * `mcp.json` allows. One parser for both, so that JSON errors get a line and column too, and
 * every one of them is reported.
 */
export function parseSource(text: string, options: { json: boolean }): ParsedSource {
  const source = options.json ? blankJsonComments(text) : text;
  const lineCounter = new LineCounter();
  const doc = parseDocument(source, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): SourcePosition => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const describe = (error: { message: string; pos: [number, number] }): SyntaxProblem => ({ message: error.message, position: at(error.pos[0]) });
  const errors = doc.errors.map(describe);
  return {
    document: errors.length > 0 ? undefined : (doc.toJS() as unknown) ?? undefined,
    errors,
    warnings: doc.warnings.map(describe),
    positionOf(path, query = {}) {
      const offset = offsetOf(doc.contents, path, query, source);
      return offset === undefined ? undefined : at(offset);
    },
  };
}

function offsetOf(root: unknown, path: readonly PropertyKey[], query: PositionQuery, text: string): number | undefined {
  let node: unknown = root;
  let key: Node | undefined;
  let reached = 0;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(segment));
      if (!pair) break;
      key = pair.key as Node;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number' && segment < node.items.length) {
      key = undefined;
      node = node.items[segment];
    } else {
      break;
    }
    reached++;
  }
  const found = reached === path.length;
  if (found && query.key && key?.range) return key.range[0];
  if (!found) return key?.range?.[0] ?? startOf(node);
  const start = startOf(node);
  if (start === undefined || query.fragment === undefined || !isScalar(node)) return start;
  const within = text.slice(start, node.range![1]).indexOf(query.fragment);
  return within === -1 ? start : start + within;
}

function startOf(node: unknown): number | undefined {
  return (node as Node | null | undefined)?.range?.[0] ?? undefined;
}

/**
 * `//` and `/* *\/` comments replaced by spaces (line breaks kept), so that what is left is
 * JSON and every position in it is the same as in the file.
 */
export function blankJsonComments(text: string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const char = text[i]!;
    if (char === '"') {
      let end = i + 1;
      while (end < text.length && text[end] !== '"' && text[end] !== '\n') end += text[end] === '\\' ? 2 : 1;
      out += text.slice(i, end + 1);
      i = end + 1;
    } else if (char === '/' && text[i + 1] === '/') {
      const end = text.indexOf('\n', i);
      const stop = end === -1 ? text.length : end;
      out += ' '.repeat(stop - i);
      i = stop;
    } else if (char === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end === -1 ? text.length : end + 2;
      out += text.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else {
      out += char;
      i++;
    }
  }
  return out;
}
