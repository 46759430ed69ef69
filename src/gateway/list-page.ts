import { ProtocolErrorCode } from '@modelcontextprotocol/server';
import { WireMcpError } from './error-mapping.js';

/** One page of `items`, with an opaque cursor for the next when there is more. */
export function pageOf<T>(items: readonly T[], cursor: string | undefined, pageSize: number): { items: readonly T[]; nextCursor?: string } {
  const offset = cursor === undefined ? 0 : decodeCursor(cursor);
  const end = offset + pageSize;
  const page = offset === 0 && end >= items.length ? items : items.slice(offset, end);
  return end < items.length ? { items: page, nextCursor: encodeCursor(end) } : { items: page };
}

function encodeCursor(offset: number): string {
  return Buffer.from(`o:${offset}`).toString('base64url');
}

function decodeCursor(cursor: string): number {
  const match = /^o:(\d{1,9})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!match) throw new WireMcpError(ProtocolErrorCode.InvalidParams, 'Invalid cursor');
  return Number(match[1]);
}
