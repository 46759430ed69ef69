import { didYouMean } from './did-you-mean.js';
import type { InputDeclaration } from './interpolate.js';
import { SERVER_KEYS } from './known-keys.js';

/**
 * The MCP server lists that clients already keep, turned into Conflux's own `servers:` shape so
 * a user can point the gateway at the file they have:
 *
 * - `mcpServers`: Claude Desktop, Claude Code's `.mcp.json`, Cursor's `.cursor/mcp.json`,
 *   Windsurf, Cline. `type`, `disabled` and `envFile` are understood.
 * - VS Code's `.vscode/mcp.json`: `servers` with `type` on each entry, and `inputs`, whose
 *   `${input:ID}` prompts become environment variables (see interpolate.ts).
 *
 * Those formats are loosely specified and grow keys Conflux has no use for: a key that is not
 * understood is reported as a warning and left out, never dropped without a word.
 */
export type ConfigDialect = 'conflux' | 'mcpServers' | 'vscode';

type Path = readonly PropertyKey[];

export interface DialectWarning {
  /** Where the key is in the file as written. */
  path: PropertyKey[];
  message: string;
}

export interface NormalizedDocument {
  dialect: ConfigDialect;
  /** Conflux's shape; an entry's `envFile` is still to be read (see server-files.ts). */
  document: Record<string, unknown>;
  inputs: Map<string, InputDeclaration>;
  warnings: DialectWarning[];
  /** Where a path of `document` is in the file as written (`servers.x.transport` may be `mcpServers.x.type`). */
  sourcePath(path: Path): PropertyKey[];
}

const TRANSPORT_ALIASES: Record<string, string> = {
  stdio: 'stdio',
  sse: 'sse',
  http: 'streamable-http',
  'streamable-http': 'streamable-http',
  streamableHttp: 'streamable-http',
  streamable_http: 'streamable-http',
};

/** Keys of other clients' entries that have no meaning for a gateway, and what to use instead. */
const CLIENT_ONLY_KEYS: Record<string, string> = {
  dev: "VS Code's development mode (watch and debug) does not apply to a gateway",
  gallery: 'where VS Code installed the server from',
  version: 'the version VS Code installed',
  sandboxEnabled: "VS Code's sandbox does not apply to a gateway",
  sandbox: "VS Code's sandbox does not apply to a gateway",
  autoApprove: "the client's approval list; the gateway's own is gateway.access (README.md#who-may-use-what)",
  alwaysAllow: "the client's approval list; the gateway's own is gateway.access (README.md#who-may-use-what)",
  disabledTools: 'to hide tools, write tools: { deny: [...] }',
};

/** What an entry of a client's file may hold besides Conflux's own keys. */
const CLIENT_KEYS = ['type', 'disabled', 'envFile'];

/** The dialect `document` is written in. */
export function dialectOf(document: Record<string, unknown>): ConfigDialect {
  if ('mcpServers' in document && !('servers' in document)) return 'mcpServers';
  if (!('servers' in document)) return 'conflux';
  if ('inputs' in document) return 'vscode';
  const entries = isRecord(document.servers) ? Object.values(document.servers).filter(isRecord) : [];
  return entries.some((entry) => 'type' in entry) && !entries.some((entry) => 'transport' in entry) ? 'vscode' : 'conflux';
}

/** `document` in Conflux's shape, with what was left out of it. */
export function normalizeDialect(document: Record<string, unknown>): NormalizedDocument {
  const dialect = dialectOf(document);
  if (dialect === 'conflux') return { dialect, document, inputs: new Map(), warnings: [], sourcePath: (path) => [...path] };

  const listKey = dialect === 'vscode' ? 'servers' : 'mcpServers';
  const warnings: DialectWarning[] = [];
  const topLevel = new Set([listKey, 'gateway', ...(dialect === 'vscode' ? ['inputs'] : [])]);
  for (const key of Object.keys(document)) {
    if (!topLevel.has(key)) warnings.push({ path: [key], message: `ignored: not a setting Conflux reads from this file${didYouMean(key, topLevel)}` });
  }

  const servers: Record<string, unknown> = {};
  const renamed = new Map<string, Map<string, string>>();
  const list = document[listKey];
  for (const [name, raw] of Object.entries(isRecord(list) ? list : {})) {
    const { server, renames } = convertEntry(raw, [listKey, name], warnings);
    servers[name] = server;
    renamed.set(name, renames);
  }
  if (list !== undefined && !isRecord(list)) warnings.push({ path: [listKey], message: 'ignored: expected a mapping of server names to servers' });

  const normalized: Record<string, unknown> = { servers };
  if (document.gateway !== undefined) normalized.gateway = document.gateway;
  return {
    dialect,
    document: normalized,
    inputs: dialect === 'vscode' ? inputDeclarations(document.inputs, warnings) : new Map(),
    warnings,
    sourcePath(path) {
      if (path[0] !== 'servers') return [...path];
      const [, name, key, ...rest] = path;
      const written = key === undefined ? undefined : (renamed.get(String(name))?.get(String(key)) ?? key);
      return [listKey, ...(name === undefined ? [] : [name]), ...(written === undefined ? [] : [written]), ...rest];
    },
  };
}

function convertEntry(raw: unknown, path: PropertyKey[], warnings: DialectWarning[]): { server: unknown; renames: Map<string, string> } {
  const renames = new Map<string, string>();
  if (!isRecord(raw)) return { server: raw, renames };
  const server: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (key === 'type' && raw.transport === undefined) {
      server.transport = typeof value === 'string' ? (TRANSPORT_ALIASES[value] ?? value) : value;
      renames.set('transport', 'type');
    } else if (key === 'disabled' && raw.enabled === undefined) {
      if (value === false) continue;
      server.enabled = value === true ? false : value;
      renames.set('enabled', 'disabled');
    } else if (key === 'auth' && isRecord(value) && value.method === undefined) {
      // Cursor's `auth` names a static OAuth client for the client itself, not Conflux's upstream auth.
      warnings.push({ path: [...path, key], message: 'ignored: a client\'s OAuth settings; the gateway logs in to an upstream with auth: { method: oauth2, clientId, clientSecret } (README.md#logging-in-to-upstream-servers)' });
    } else if (key === 'envFile' || SERVER_KEYS.includes(key)) {
      server[key] = value;
    } else if (key in CLIENT_ONLY_KEYS) {
      warnings.push({ path: [...path, key], message: `ignored: ${CLIENT_ONLY_KEYS[key]}` });
    } else {
      warnings.push({ path: [...path, key], message: `ignored: not a setting Conflux knows${didYouMean(key, [...SERVER_KEYS, ...CLIENT_KEYS])}` });
    }
  }
  return { server, renames };
}

function inputDeclarations(inputs: unknown, warnings: DialectWarning[]): Map<string, InputDeclaration> {
  const declared = new Map<string, InputDeclaration>();
  if (inputs === undefined) return declared;
  if (!Array.isArray(inputs)) {
    warnings.push({ path: ['inputs'], message: 'ignored: expected a list of inputs' });
    return declared;
  }
  inputs.forEach((input, index) => {
    if (!isRecord(input) || typeof input.id !== 'string') {
      warnings.push({ path: ['inputs', index], message: 'ignored: an input needs an "id"' });
      return;
    }
    declared.set(input.id, {
      id: input.id,
      description: typeof input.description === 'string' ? input.description : undefined,
      default: typeof input.default === 'string' ? input.default : undefined,
    });
  });
  return declared;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
