/**
 * The `mcpServers` JSON that Claude Desktop, Cursor and most MCP clients use, turned into
 * Conflux's own `servers:` shape so a user can point the gateway at the file they already have.
 * That format is loosely specified, so unknown keys are tolerated here and not passed on.
 */

const TRANSPORT_ALIASES: Record<string, string> = {
  stdio: 'stdio',
  sse: 'sse',
  http: 'streamable-http',
  'streamable-http': 'streamable-http',
  streamableHttp: 'streamable-http',
  'streamable_http': 'streamable-http',
};

export function isClaudeDesktopFormat(document: unknown): document is { mcpServers: Record<string, unknown> } {
  return (
    document !== null &&
    typeof document === 'object' &&
    'mcpServers' in document &&
    !('servers' in document)
  );
}

export function fromClaudeDesktopFormat(document: { mcpServers: Record<string, unknown> }): unknown {
  const servers: Record<string, unknown> = {};
  const entries = document.mcpServers && typeof document.mcpServers === 'object' ? document.mcpServers : {};
  for (const [name, raw] of Object.entries(entries)) {
    if (raw === null || typeof raw !== 'object') {
      servers[name] = raw;
      continue;
    }
    const entry = raw as Record<string, unknown>;
    const declared = entry.type ?? entry.transport;
    const server: Record<string, unknown> = {};
    if (typeof declared === 'string') server.transport = TRANSPORT_ALIASES[declared] ?? declared;
    for (const key of ['command', 'args', 'env', 'cwd', 'url', 'headers', 'timeout', 'description', 'tags', 'prefix'] as const) {
      if (entry[key] !== undefined) server[key] = entry[key];
    }
    if (entry.disabled === true) server.enabled = false;
    servers[name] = server;
  }
  const gateway = (document as Record<string, unknown>).gateway;
  return gateway === undefined ? { servers } : { gateway, servers };
}
