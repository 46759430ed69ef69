import { INVALID_REQUEST, jsonRpcError, PARSE_ERROR } from './json-rpc-errors.js';

/** Why a request body is not an acceptable JSON document. */
export type JsonBodyProblem = { kind: 'parse' | 'depth'; message: string };

/**
 * Parses a request body and measures its nesting, for every surface that takes JSON. The depth
 * is measured iteratively, so a hostile document cannot overflow the stack here, and documents
 * deeper than `maxDepth` never reach code that walks them recursively (validators, redaction).
 */
export function parseJsonBody(text: string, maxDepth: number): { value: unknown } | { problem: JsonBodyProblem } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { problem: { kind: 'parse', message: (error as Error).message } };
  }
  if (depthExceeds(value, maxDepth)) return { problem: { kind: 'depth', message: `JSON nested deeper than ${maxDepth} levels` } };
  return { value };
}

function depthExceeds(root: unknown, maxDepth: number): boolean {
  const stack: [unknown, number][] = [[root, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (value === null || typeof value !== 'object') continue;
    if (depth > maxDepth) return true;
    for (const child of Array.isArray(value) ? value : Object.values(value)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}

/**
 * A JSON-RPC request body, read and checked once for the MCP endpoints (`/mcp`, `/messages`):
 * the parsed value, or the JSON-RPC error response to send instead (-32700 for bad JSON, -32600
 * for a body that cannot be read or nests too deep).
 */
export async function readJsonRpcBody(request: Request, maxDepth: number): Promise<unknown> {
  let text: string;
  try {
    text = await request.text();
  } catch {
    return jsonRpcError(400, INVALID_REQUEST, 'Invalid Request: the body could not be read');
  }
  const parsed = parseJsonBody(text, maxDepth);
  if ('value' in parsed) return parsed.value;
  return parsed.problem.kind === 'parse'
    ? jsonRpcError(400, PARSE_ERROR, `Parse error: ${parsed.problem.message}`)
    : jsonRpcError(400, INVALID_REQUEST, `Invalid Request: ${parsed.problem.message}`);
}
