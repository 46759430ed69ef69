import { createMCPClient, ElicitationRequestSchema } from '@ai-sdk/mcp';
import { filledForm, textOrThrow, type InteropClient, type ServerRequestAnswers } from './interop-client.js';

/**
 * The Vercel AI SDK's MCP client (`@ai-sdk/mcp` 2.x) with its HTTP transport; no model involved.
 * It can answer form elicitation only: its capabilities schema has `elicitation` and nothing
 * else, `onElicitationRequest` is its one handler, and it refuses any other request a server
 * sends (-32601) and any other `input_required` request ("Only form elicitation is supported").
 * So it is given no sampling answer.
 */
export async function connectAiSdk(url: string, answers: Pick<ServerRequestAnswers, 'elicitation'> = {}): Promise<InteropClient> {
  const { elicitation } = answers;
  const client = await createMCPClient({
    transport: { type: 'http', url },
    clientName: 'interop-ai-sdk',
    ...(elicitation ? { capabilities: { elicitation: {} } } : {}),
  });
  if (elicitation) {
    client.onElicitationRequest(ElicitationRequestSchema, (request) => ({
      action: 'accept',
      content: filledForm(request.params.requestedSchema, elicitation(request.params.message)),
    }));
  }
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
