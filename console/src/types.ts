/** The REST API's answers as the console reads them (see src/http/api/response-schemas.ts). */

export type UpstreamState = 'connecting' | 'ready' | 'degraded' | 'down' | 'misconfigured' | 'disabled';

export interface Server {
  name: string;
  state: UpstreamState;
  transport: 'stdio' | 'streamable-http' | 'sse';
  description?: string;
  tags: string[];
  toolCount: number;
  url?: string;
  perUser?: true;
  replicas?: { replica: string; state: UpstreamState }[];
  /** `config` (the config file: read-only here), or `api` (registered through the API). */
  source?: 'config' | 'api';
  enabled?: boolean;
  lastError?: string;
  connectedAt?: string;
}

export interface ToolSummary {
  name: string;
  server?: string;
  originalName?: string;
  title?: string;
  description?: string;
}

export interface JsonSchema {
  type?: string | string[];
  title?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  default?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  minimum?: number;
  maximum?: number;
}

export interface Tool {
  name: string;
  title?: string;
  description?: string;
  inputSchema: JsonSchema;
  outputSchema?: JsonSchema;
  route: { kind: string; server?: string; originalName?: string };
}

export type ContentBlock =
  | { type: 'text'; text: string }
  | { type: 'image'; data: string; mimeType: string }
  | { type: 'audio'; data: string; mimeType: string }
  | { type: 'resource'; resource: { uri: string; mimeType?: string; text?: string; blob?: string } }
  | { type: 'resource_link'; uri: string; name: string; description?: string; mimeType?: string };

export interface CallToolResult {
  content?: ContentBlock[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
}

export interface BroadcastStructured {
  results: Record<string, CallToolResult>;
  errors: Record<string, string>;
  total: number;
  succeeded: number;
  failed: number;
  durationMs: number;
}

export interface Me {
  principal: string;
  subject: string;
  email?: string;
  groups: string[];
  roles: string[];
  method: 'none' | 'oauth' | 'jwt' | 'api_key' | 'header';
  admin: boolean;
  servers: Record<string, 'read' | 'call'>;
}

export interface AuditEvent {
  id: number;
  at: string;
  kind: 'tool_call' | 'prompt_get' | 'resource_read' | 'admin';
  principal: string;
  channel: 'mcp' | 'rest' | 'cli';
  server?: string;
  target: string;
  status: 'ok' | 'error' | 'denied';
  error?: string;
  durationMs?: number;
}

export interface McpSession {
  id: string;
  principal: string;
  client?: { name: string; version: string };
  protocolVersion?: string;
  origin: 'opened' | 'rebuilt';
  createdAt: string;
  lastSeenAt: string;
  openStreams: number;
  activeCalls: number;
}

export interface Connection {
  user: string;
  server: string;
  createdAt: string;
  expiresAt: string | null;
  scopes: string[];
}
