import { Client, StreamableHTTPClientTransport, type VersionNegotiationMode } from '@modelcontextprotocol/client';
import { textOrThrow, type InteropClient } from './interop-client.js';

/**
 * The MCP TypeScript SDK v2 client over Streamable HTTP. `negotiation` is its
 * `versionNegotiation.mode`: `auto` probes with `server/discover` and falls back to
 * `initialize`; a pin speaks that revision or fails to connect.
 */
export async function connectSdkV2(url: string, negotiation: VersionNegotiationMode): Promise<InteropClient & { era(): string | undefined }> {
  const client = new Client({ name: 'interop-sdk-v2', version: '1.0.0' }, { versionNegotiation: { mode: negotiation } });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);
  return {
    era: () => client.getProtocolEra(),
    async listToolNames() {
      const names: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await client.listTools(cursor === undefined ? undefined : { cursor });
        names.push(...page.tools.map((t) => t.name));
        cursor = page.nextCursor;
      } while (cursor !== undefined);
      return names;
    },
    async callText(name, args) {
      return textOrThrow(await client.callTool({ name, arguments: args }));
    },
    async close() {
      if (client.getProtocolEra() === 'legacy') await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}
