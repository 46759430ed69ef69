import type { Tool } from '@modelcontextprotocol/client';
import { legalName } from './naming.js';
import type { ToolRoute } from './tool-catalog.js';

export interface GeneratedToolsOptions {
  /** Generate `broadcast__<tool>` and `broadcast__by_tag__<tag>` (default true). */
  broadcasts?: boolean;
}

/** One server's part in the generated tools: its tags and the tools it exposes (by their own names). */
export interface ServerTools {
  server: string;
  tags: readonly string[];
  tools: readonly Tool[];
}

/** One server's tool of a broadcast's name. */
export interface BroadcastOffer {
  server: string;
  tags: readonly string[];
  tool: Tool;
}

export interface GeneratedTool {
  tool: Tool;
  route: ToolRoute;
  /** Listed only when exposure is `search` (the search and call meta-tools). */
  searchModeOnly: boolean;
}

export const SEARCH_TOOL = 'conflux__search_tools';
export const CALL_TOOL = 'conflux__call_tool';

/**
 * Fewest servers a generated tool is made for. A caller's view applies the same minimums to
 * the servers it may call: a broadcast over one server would tell it that a server it cannot
 * see offers the same tool.
 */
export const MIN_BROADCAST_SERVERS = 2;
export const MIN_TAG_SERVERS = 1;

type JsonSchema = Record<string, unknown>;

/**
 * The gateway's own tools, derived from what the upstreams offer: a broadcast for every tool
 * name two or more servers share, one per tag, and the search/call pair.
 */
export function generatedTools(servers: readonly ServerTools[], options: GeneratedToolsOptions = {}): GeneratedTool[] {
  const out: GeneratedTool[] = [];
  if (options.broadcasts !== false) {
    out.push(...broadcastTools(servers));
    out.push(...tagTools(servers));
  }
  out.push({ tool: searchTool(), route: { kind: 'search' }, searchModeOnly: true });
  out.push({ tool: callTool(), route: { kind: 'call' }, searchModeOnly: true });
  return out;
}

function broadcastTools(servers: readonly ServerTools[]): GeneratedTool[] {
  const offers = new Map<string, BroadcastOffer[]>();
  for (const { server, tags, tools } of servers) {
    for (const tool of tools) {
      let list = offers.get(tool.name);
      if (!list) offers.set(tool.name, (list = []));
      list.push({ server, tags, tool });
    }
  }
  const out: GeneratedTool[] = [];
  for (const [name, list] of offers) {
    if (list.length < MIN_BROADCAST_SERVERS) continue;
    out.push({ tool: broadcastTool(name, list), route: { kind: 'broadcast', tool: name, servers: list.map((o) => o.server) }, searchModeOnly: false });
  }
  return out;
}

/**
 * `broadcast__<name>` over exactly the servers in `offers`: its schema, description and enums
 * are made from them alone (a caller's view passes only the servers it may call).
 */
export function broadcastTool(name: string, offers: readonly BroadcastOffer[]): Tool {
  const serverNames = offers.map((o) => o.server);
  const tags = [...new Set(offers.flatMap((o) => o.tags))].sort();
  const schema = mergeInputSchemas(offers.map((o) => o.tool.inputSchema as JsonSchema));
  const properties = {
    ...(schema.properties as Record<string, unknown>),
    servers: {
      type: 'array',
      items: { type: 'string', enum: serverNames },
      description: 'Run only on these servers (default: all that offer the tool).',
    },
    tags: {
      type: 'array',
      items: tags.length ? { type: 'string', enum: tags } : { type: 'string' },
      description: 'Run only on servers with any of these tags.',
    },
  };
  const first = offers[0]!.tool;
  return {
    name: legalName(`broadcast__${name}`),
    title: `Broadcast ${first.title ?? name}`,
    description: `Runs "${name}" on every server that offers it (${serverNames.join(', ')}) at once and returns each server's result, labelled. ${first.description ?? ''}`.trim(),
    inputSchema: { ...schema, type: 'object', properties } as Tool['inputSchema'],
    annotations: mergedAnnotations(offers.map((o) => o.tool)),
  };
}

function tagTools(servers: readonly ServerTools[]): GeneratedTool[] {
  const tagged = new Map<string, ServerTools[]>();
  for (const server of servers) {
    for (const tag of server.tags) {
      let list = tagged.get(tag);
      if (!list) tagged.set(tag, (list = []));
      list.push(server);
    }
  }
  return [...tagged]
    .filter(([, list]) => list.length >= MIN_TAG_SERVERS)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([tag, list]) => ({ tool: tagTool(tag, list), route: { kind: 'tag', tag, servers: list.map((s) => s.server) }, searchModeOnly: false }));
}

/** `broadcast__by_tag__<tag>` over exactly `servers`, its tool enum made of the tools they list. */
export function tagTool(tag: string, servers: readonly ServerTools[]): Tool {
  const toolNames = [...new Set(servers.flatMap((s) => s.tools.map((t) => t.name)))].sort();
  return {
    name: legalName(`broadcast__by_tag__${tag}`),
    title: `Run a tool on every "${tag}" server`,
    description: `Runs one tool on every server tagged "${tag}" that offers it (${servers.map((s) => s.server).join(', ')}) and returns each server's result, labelled.`,
    inputSchema: {
      type: 'object',
      properties: {
        tool: { type: 'string', description: "The tool's own name on the servers (without prefix).", ...(toolNames.length ? { enum: toolNames } : {}) },
        arguments: { type: 'object', description: 'Arguments for the tool.', additionalProperties: true },
      },
      required: ['tool'],
    },
  };
}

function searchTool(): Tool {
  return {
    name: SEARCH_TOOL,
    title: 'Search tools',
    description:
      'Finds the tools best matching a description of what you want to do, among all tools of all servers behind this gateway. ' +
      `Returns their names and input schemas; call one with ${CALL_TOOL}.`,
    inputSchema: {
      type: 'object',
      properties: {
        query: { type: 'string', description: 'What you want to do, in words (e.g. "create a github issue").' },
        limit: { type: 'integer', minimum: 1, maximum: 50, description: 'How many tools to return (default 10).' },
      },
      required: ['query'],
    },
    annotations: { readOnlyHint: true, openWorldHint: false },
  };
}

function callTool(): Tool {
  return {
    name: CALL_TOOL,
    title: 'Call a tool',
    description: `Calls any tool behind this gateway by its name (as found with ${SEARCH_TOOL}) with its arguments.`,
    inputSchema: {
      type: 'object',
      properties: {
        name: { type: 'string', description: 'The tool name, exactly as returned by the search.' },
        arguments: { type: 'object', description: "The tool's arguments.", additionalProperties: true },
      },
      required: ['name'],
    },
  };
}

/**
 * One input schema for a tool that several servers offer with possibly different schemas:
 * the union of their properties (a property defined differently becomes `anyOf` the
 * variants) and the intersection of their required lists, so any call valid for the merged
 * schema is one every server could accept or reject on its own terms.
 */
export function mergeInputSchemas(schemas: readonly JsonSchema[]): JsonSchema {
  const variants = new Map<string, unknown[]>();
  let required: string[] | undefined;
  for (const schema of schemas) {
    const properties = (schema.properties ?? {}) as Record<string, unknown>;
    for (const [key, value] of Object.entries(properties)) {
      let list = variants.get(key);
      if (!list) variants.set(key, (list = []));
      if (!list.some((v) => JSON.stringify(v) === JSON.stringify(value))) list.push(value);
    }
    const own = Array.isArray(schema.required) ? (schema.required as string[]) : [];
    required = required === undefined ? [...own] : required.filter((r) => own.includes(r));
  }
  const properties = Object.fromEntries([...variants].map(([key, list]) => [key, list.length === 1 ? list[0] : { anyOf: list }]));
  return { type: 'object', properties, ...(required && required.length ? { required } : {}) };
}

/** A hint holds for the broadcast only if it holds for every server's tool. */
function mergedAnnotations(tools: readonly Tool[]): Tool['annotations'] {
  const all = (key: 'readOnlyHint' | 'idempotentHint') => tools.every((t) => t.annotations?.[key] === true);
  const any = (key: 'destructiveHint' | 'openWorldHint') => tools.some((t) => t.annotations?.[key] !== false);
  return { readOnlyHint: all('readOnlyHint'), idempotentHint: all('idempotentHint'), destructiveHint: any('destructiveHint'), openWorldHint: any('openWorldHint') };
}
