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

/**
 * What a client answers when a server asks it something in the middle of a call. A client
 * declares the capability for each answer it is given and for no other, so the gateway and the
 * upstream never ask it for what it cannot give.
 */
export interface ServerRequestAnswers {
  /** Answers `sampling/createMessage`: the completion's text, given the text of the last message. */
  sampling?: (prompt: string) => string;
  /** Answers a form `elicitation/create` by accepting it with this text in every string field of the form. */
  elicitation?: (message: string) => string;
}

/** The accepted content of a form: `value` in each string property of its requested schema. */
export function filledForm(requestedSchema: unknown, value: string): Record<string, string> {
  const properties = (requestedSchema as { properties?: Record<string, { type?: unknown }> } | undefined)?.properties ?? {};
  return Object.fromEntries(Object.entries(properties).flatMap(([name, property]) => (property.type === 'string' ? [[name, value]] : [])));
}

/** The text of a sampling request's last message (text blocks joined). */
export function lastMessageText(messages: readonly { content: unknown }[]): string {
  const content = messages.at(-1)?.content;
  return joinedText(Array.isArray(content) ? content : content === undefined ? [] : [content]);
}
