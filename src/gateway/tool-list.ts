import { ErrorCode, McpError, type ListToolsResult, type Tool } from '@modelcontextprotocol/sdk/types.js';

/** One page of `tools`, with an opaque cursor for the next when there is more. */
export function toolListPage(tools: readonly Tool[], cursor: string | undefined, pageSize: number): ListToolsResult {
  const offset = cursor === undefined ? 0 : decodeCursor(cursor);
  const end = offset + pageSize;
  const page = offset === 0 && end >= tools.length ? (tools as Tool[]) : tools.slice(offset, end);
  return end < tools.length ? { tools: page, nextCursor: encodeCursor(end) } : { tools: page };
}

function encodeCursor(offset: number): string {
  return Buffer.from(`o:${offset}`).toString('base64url');
}

function decodeCursor(cursor: string): number {
  const match = /^o:(\d{1,9})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!match) throw new McpError(ErrorCode.InvalidParams, 'Invalid cursor');
  return Number(match[1]);
}
