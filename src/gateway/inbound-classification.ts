import { classifyInboundRequest, type InboundClassificationOutcome } from '@modelcontextprotocol/server';

/**
 * The SDK's full classification of a POST to the MCP endpoint, from its headers and parsed
 * body: the one place that maps the request's headers onto the classification's input.
 */
export function classifyPost(headers: Headers, body: unknown): InboundClassificationOutcome {
  return classifyInboundRequest({
    httpMethod: 'POST',
    protocolVersionHeader: headers.get('mcp-protocol-version') ?? undefined,
    mcpMethodHeader: headers.get('mcp-method') ?? undefined,
    mcpNameHeader: headers.get('mcp-name') ?? undefined,
    body,
  });
}
