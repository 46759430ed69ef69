import { Client, StreamableHTTPClientTransport, type ClientCapabilities, type VersionNegotiationMode } from '@modelcontextprotocol/client';
import { filledForm, lastMessageText, textOrThrow, type InteropClient, type ServerRequestAnswers } from './interop-client.js';

/**
 * The MCP TypeScript SDK v2 client over Streamable HTTP. `negotiation` is its
 * `versionNegotiation.mode`: `auto` probes with `server/discover` and falls back to
 * `initialize`; a pin speaks that revision or fails to connect; `legacy` sends `initialize`
 * only. Each handler in `answers` is registered once and answers however the era delivers the
 * request: pushed on a 2025 session, or embedded in an `input_required` result that the client
 * fulfils and retries by itself on 2026-07-28.
 */
export async function connectSdkV2(
  url: string,
  negotiation: VersionNegotiationMode,
  answers: ServerRequestAnswers = {},
): Promise<InteropClient & { era(): string | undefined }> {
  const capabilities: ClientCapabilities = {
    ...(answers.sampling ? { sampling: {} } : {}),
    ...(answers.elicitation ? { elicitation: { form: {} } } : {}),
  };
  const client = new Client({ name: 'interop-sdk-v2', version: '1.0.0' }, { versionNegotiation: { mode: negotiation }, capabilities });
  const { sampling, elicitation } = answers;
  if (sampling) {
    client.setRequestHandler('sampling/createMessage', async (request) => ({
      role: 'assistant',
      model: 'interop-sdk-v2',
      content: { type: 'text', text: sampling(lastMessageText(request.params.messages)) },
    }));
  }
  if (elicitation) {
    client.setRequestHandler('elicitation/create', async (request) =>
      request.params.mode === 'url'
        ? { action: 'decline' }
        : { action: 'accept', content: filledForm(request.params.requestedSchema, elicitation(request.params.message)) },
    );
  }
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
