/** What every client adapter offers the interop suite: the three things a user of it does first. */
export interface InteropClient {
  /** Every tool name the server lists, across pages. */
  listToolNames(): Promise<string[]>;
  /** Calls a tool and returns its text blocks joined; a tool error is thrown with its text. */
  callText(name: string, args: Record<string, unknown>): Promise<string>;
  close(): Promise<void>;
}

/** The text blocks of a tool result's content, joined. */
export function joinedText(content: unknown): string {
  if (!Array.isArray(content)) return '';
  return content.map((block: { type?: string; text?: unknown }) => (block.type === 'text' && typeof block.text === 'string' ? block.text : '')).join('');
}

/** Throws when a result is a tool error, so a refused call never reads as an empty answer. */
export function textOrThrow(result: object): string {
  const { content, isError } = result as { content?: unknown; isError?: unknown };
  const text = joinedText(content);
  if (isError === true) throw new Error(`tool error: ${text}`);
  return text;
}
