import { createMCPClient } from '@ai-sdk/mcp';
import { textOrThrow, type InteropClient } from './interop-client.js';

/** The Vercel AI SDK's MCP client (`@ai-sdk/mcp` 2.x) with its HTTP transport; no model involved. */
export async function connectAiSdk(url: string): Promise<InteropClient> {
  const client = await createMCPClient({ transport: { type: 'http', url }, clientName: 'interop-ai-sdk' });
  return {
    async listToolNames() {
      const names: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await client.listTools(cursor === undefined ? undefined : { params: { cursor } });
        names.push(...page.tools.map((t) => t.name));
        cursor = page.nextCursor;
      } while (cursor !== undefined);
      return names;
    },
    async callText(name, args) {
      return textOrThrow(await client.callTool({ name, arguments: args }));
    },
    close: () => client.close(),
  };
}
