import { MCPServerStreamableHttp } from '@openai/agents';
import { joinedText, type InteropClient } from './interop-client.js';

/**
 * The OpenAI Agents SDK's MCP server handle (`@openai/agents` 0.20) over Streamable HTTP: its
 * MCP client part only (connect, list, call), which needs no model and no API key. It cannot
 * answer a server's requests: it builds its SDK v2 `Client` itself with no capabilities and
 * registers no handler, and its options offer neither (no sampling, elicitation or roots).
 */
export async function connectOpenAiAgents(url: string): Promise<InteropClient> {
  // The tools cache would hide a second listing from the wire; each listing here is a request.
  const server = new MCPServerStreamableHttp({ url, name: 'conflux', cacheToolsList: false });
  await server.connect();
  return {
    async listToolNames() {
      return (await server.listTools()).map((t) => t.name);
    },
    async callText(name, args) {
      const result = await server.callToolResult(name, args);
      const text = joinedText(result.content);
      if (result.isError === true) throw new Error(`tool error: ${text}`);
      return text;
    },
    close: () => server.close(),
  };
}
