import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { textOrThrow, type InteropClient } from './interop-client.js';

/** The MCP TypeScript SDK v1 client (1.32) over Streamable HTTP: `initialize` and a session. */
export async function connectSdkV1(url: string): Promise<InteropClient> {
  const client = new Client({ name: 'interop-sdk-v1', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);
  return {
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
      // Ending the session is best effort: a gateway already stopped has nothing to end.
      await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}
