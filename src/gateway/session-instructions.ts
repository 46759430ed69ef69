import type { Upstream } from '../upstream/upstream.js';

/** What the gateway says of itself, first in every session's instructions. */
export const GATEWAY_INSTRUCTIONS =
  'Conflux gateway: tools from several MCP servers, each named <server>__<tool>. ' +
  'A tool error that names an upstream means that server failed, not that the request was wrong.';

/** At most this much of one server's instructions is passed on. */
export const MAX_SERVER_INSTRUCTIONS = 2000;
/** The whole instructions are at most this long: a client puts them in every prompt. */
export const MAX_INSTRUCTIONS = 8000;
/** Room kept under MAX_INSTRUCTIONS for the note that servers were left out. */
const OMISSION_NOTE_ROOM = 120;

/** One connected upstream's instructions, with what labels them. */
export interface UpstreamInstructions {
  server: string;
  /** The prefix of its exposed names ('' when they are the server's own). */
  prefix: string;
  separator: string;
  text: string;
}

/** The instructions of the ready upstreams that sent some, by server name. */
export function upstreamInstructions(upstreams: readonly Upstream[]): UpstreamInstructions[] {
  return upstreams
    .filter((u) => u.state === 'ready' && u.instructions?.trim())
    .map((u) => ({ server: u.name, prefix: u.config.prefix ?? u.name, separator: u.config.separator, text: u.instructions! }))
    .sort((a, b) => (a.server < b.server ? -1 : a.server > b.server ? 1 : 0));
}

/**
 * A session's instructions: the gateway's paragraph, then the instructions of each upstream
 * the caller may read under a heading naming the server and its tools. Each server's text is
 * cut at MAX_SERVER_INSTRUCTIONS and the whole at MAX_INSTRUCTIONS, with a note where cut.
 */
export function sessionInstructions(upstreams: readonly UpstreamInstructions[], access: { visible(server: string): boolean }): string {
  const readable = upstreams.filter((u) => access.visible(u.server));
  if (readable.length === 0) return GATEWAY_INSTRUCTIONS;
  let text =
    GATEWAY_INSTRUCTIONS +
    '\n\nInstructions from the servers behind the gateway follow, each under a heading that names its server; they apply to that server\'s tools only.';
  for (const [index, upstream] of readable.entries()) {
    const section = `\n\n${heading(upstream)}\n${neutralised(capped(upstream.text.trim(), MAX_SERVER_INSTRUCTIONS, upstream.server))}`;
    if (text.length + section.length > MAX_INSTRUCTIONS - OMISSION_NOTE_ROOM) {
      const left = readable.length - index;
      return `${text}\n\n[instructions of ${left} more server${left === 1 ? '' : 's'} left out: at most ${MAX_INSTRUCTIONS} characters are passed on]`;
    }
    text += section;
  }
  return text;
}

function heading({ server, prefix, separator }: UpstreamInstructions): string {
  return `## ${server} (${prefix === '' ? "tools named as the server names them" : `tools named ${prefix}${separator}*`})`;
}

/** `text` cut at `max` characters (never inside a surrogate pair), with a note saying so. */
function capped(text: string, max: number, server: string): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max).replace(/[\uD800-\uDBFF]$/, '')}\n[cut: ${server}'s instructions are longer than ${max} characters]`;
}

/**
 * Upstream text is data: a line of it must not pass for one of our server headings, which
 * would let one server speak as another. Headings are ATX (`## name (...)`) and start a line,
 * so every line that starts with `#` is escaped (`\#`, the Markdown for a literal `#`), after
 * every line break form is made `\n` (a bare `\r` ends a line for some readers).
 */
function neutralised(text: string): string {
  return text
    .split(/\r\n|\r|\n|\u2028|\u2029/)
    .map((line) => line.replace(/^(\s*)#/, '$1\\#'))
    .join('\n');
}
