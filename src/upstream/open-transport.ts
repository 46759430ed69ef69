import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from 'pino';
import type { HttpServerConfig, ServerConfig } from '../config/schema.js';
import type { ChildProcessGroups } from './child-processes.js';
import { HttpClientTransport } from './http-client-transport.js';
import { StdioClientTransport } from './stdio-transport.js';
import type { OwnerChannel } from './owner-channel.js';
import { bestEffort } from '../observability/best-effort.js';
import { describeError } from './failure-classification.js';

export interface OpenedClient {
  client: Client;
  transport: Transport;
  /** The wire actually in use (a `streamable-http` server may have been reached over SSE). */
  wire: 'stdio' | 'streamable-http' | 'sse';
}

export interface OpenOptions {
  config: ServerConfig;
  logger: Logger;
  groups: ChildProcessGroups;
  newClient: () => Client;
  timeoutMs: number;
  /** Carries a request's owner to the messages on its response stream (Streamable HTTP). */
  owners?: OwnerChannel;
}

/**
 * Connects an SDK client to one upstream over its configured wire. A `streamable-http`
 * server that refuses the Streamable HTTP handshake is tried again over legacy SSE at the
 * same URL, as the MCP specification's backwards-compatibility section describes.
 */
export async function openClient(options: OpenOptions): Promise<OpenedClient> {
  const { config } = options;
  if (config.transport === 'stdio') {
    const transport = new StdioClientTransport({
      command: config.command,
      args: config.args,
      env: config.env,
      cwd: config.cwd,
      logger: options.logger,
      groups: options.groups,
    });
    return connect(options.newClient(), transport, 'stdio', options, () => transport.describeExit());
  }
  if (config.transport === 'sse') return connect(options.newClient(), sseTransport(config), 'sse', options);
  try {
    return await connect(options.newClient(), streamableTransport(config, options.owners), 'streamable-http', options);
  } catch (error) {
    if (!worthTryingSse(error)) throw error;
    options.logger.info({ reason: describeError(error) }, 'Streamable HTTP refused; trying legacy SSE');
    try {
      return await connect(options.newClient(), sseTransport(config), 'sse', options);
    } catch {
      throw error; // the Streamable HTTP failure is the one the user needs to see
    }
  }
}

async function connect(
  client: Client,
  transport: Transport,
  wire: OpenedClient['wire'],
  { timeoutMs, logger }: Pick<OpenOptions, 'timeoutMs' | 'logger'>,
  explainClose?: () => string | undefined,
): Promise<OpenedClient> {
  try {
    await client.connect(transport, { timeout: timeoutMs });
    return { client, transport, wire };
  } catch (error) {
    await bestEffort(() => client.close(), logger, 'close the client of a failed connection attempt');
    const exit = explainClose?.();
    if (exit && error instanceof McpError && error.code === ErrorCode.ConnectionClosed) throw new Error(exit);
    throw error;
  }
}

function streamableTransport(config: HttpServerConfig, owners: OwnerChannel | undefined): Transport {
  return new HttpClientTransport(new URL(config.url), { headers: config.headers, owners });
}

function sseTransport(config: HttpServerConfig): Transport {
  return new SSEClientTransport(new URL(config.url), {
    requestInit: { headers: config.headers },
    eventSourceInit: { fetch: (url, init) => fetch(url, { ...init, headers: { ...config.headers, ...init?.headers } }) },
  });
}

function worthTryingSse(error: unknown): boolean {
  if (error instanceof StreamableHTTPError) {
    const status = error.code ?? 0;
    return status >= 400 && status < 500 && status !== 401 && status !== 403;
  }
  return false;
}
