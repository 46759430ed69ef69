import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema, ElicitRequestSchema, type ClientCapabilities } from '@modelcontextprotocol/sdk/types.js';
import { filledForm, lastMessageText, textOrThrow, type InteropClient, type ServerRequestAnswers } from './interop-client.js';

/**
 * The MCP TypeScript SDK v1 client (1.32) over Streamable HTTP: `initialize` and a session.
 * The handlers in `answers` answer what a server pushes on that session mid-call.
 */
export async function connectSdkV1(url: string, answers: ServerRequestAnswers = {}): Promise<InteropClient> {
  const capabilities: ClientCapabilities = {
    ...(answers.sampling ? { sampling: {} } : {}),
    ...(answers.elicitation ? { elicitation: { form: {} } } : {}),
  };
  const client = new Client({ name: 'interop-sdk-v1', version: '1.0.0' }, { capabilities });
  const { sampling, elicitation } = answers;
  if (sampling) {
    client.setRequestHandler(CreateMessageRequestSchema, async (request) => ({
      role: 'assistant',
      model: 'interop-sdk-v1',
      content: { type: 'text', text: sampling(lastMessageText(request.params.messages)) },
    }));
  }
  if (elicitation) {
    client.setRequestHandler(ElicitRequestSchema, async (request) =>
      request.params.mode === 'url'
        ? { action: 'decline' }
        : { action: 'accept', content: filledForm(request.params.requestedSchema, elicitation(request.params.message)) },
    );
  }
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
