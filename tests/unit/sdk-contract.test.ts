/**
 * What Conflux relies on the MCP SDK v2 packages (pinned to one exact version in package.json)
 * to do. When the SDK is upgraded, a failure here names the assumption that moved, before an
 * integration test fails somewhere far from the cause. The behaviours the SDK does not document
 * (synchronous send, delivery timing, cancellation through `onmessage`) are shown with live SDK
 * objects in sdk-assumptions.test.ts.
 */
import { describe, expect, it } from 'vitest';
import * as client from '@modelcontextprotocol/client';
import * as server from '@modelcontextprotocol/server';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { asMcpError, isProtocolError } from '../../src/gateway/error-mapping.js';
import { silentLogger } from '../../src/observability/logger.js';

const ROOT = resolve(import.meta.dirname, '../..');
const MODERN = '2026-07-28';
const envelope = { [server.PROTOCOL_VERSION_META_KEY]: MODERN, [server.CLIENT_CAPABILITIES_META_KEY]: {} };

describe('the SDK v2 packages Conflux is built on', () => {
  it('are the exact versions package.json pins, one version for all three', () => {
    const manifest = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const pinned = ['server', 'client', 'core'].map((p) => manifest.dependencies[`@modelcontextprotocol/${p}`]);
    expect(new Set(pinned).size).toBe(1);
    expect(pinned[0]).toMatch(/^\d+\.\d+\.\d+$/);
    for (const p of ['server', 'client', 'core']) {
      const installed = JSON.parse(readFileSync(resolve(ROOT, `node_modules/@modelcontextprotocol/${p}/package.json`), 'utf8')) as { version: string };
      expect(installed.version, p).toBe(pinned[0]);
    }
  });

  it('name the reserved _meta keys as the 2026-07-28 revision does (they are stripped at each hop by name)', () => {
    expect(server.PROTOCOL_VERSION_META_KEY).toBe('io.modelcontextprotocol/protocolVersion');
    expect(server.CLIENT_CAPABILITIES_META_KEY).toBe('io.modelcontextprotocol/clientCapabilities');
    expect(server.CLIENT_INFO_META_KEY).toBe('io.modelcontextprotocol/clientInfo');
    expect(server.LOG_LEVEL_META_KEY).toBe('io.modelcontextprotocol/logLevel');
    expect(client.PROTOCOL_VERSION_META_KEY).toBe(server.PROTOCOL_VERSION_META_KEY);
  });

  it('still speak 2025-11-25 and the older revisions on sessions', () => {
    expect(server.SUPPORTED_PROTOCOL_VERSIONS).toEqual(expect.arrayContaining(['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05']));
    expect(client.SUPPORTED_PROTOCOL_VERSIONS).toEqual(server.SUPPORTED_PROTOCOL_VERSIONS);
  });

  describe('classifyInboundRequest, which routes every POST on /mcp to the session path or the per-request path', () => {
    const classify = (body: unknown, headers: { version?: string; method?: string; name?: string } = {}) =>
      server.classifyInboundRequest({
        httpMethod: 'POST',
        protocolVersionHeader: headers.version,
        mcpMethodHeader: headers.method,
        mcpNameHeader: headers.name,
        body,
      }).kind;

    it('calls an initialize, and a request without the envelope, legacy', () => {
      expect(classify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'c', version: '1' } } })).toBe('legacy');
      expect(classify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }, { version: '2025-11-25' })).toBe('legacy');
    });

    it('does not call an enveloped request with its standard headers legacy', () => {
      const kind = classify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: {}, _meta: envelope } }, { version: MODERN, method: 'tools/call', name: 'echo' });
      expect(kind).not.toBe('legacy');
      expect(classify({ jsonrpc: '2.0', id: 4, method: 'server/discover', params: { _meta: envelope } }, { version: MODERN, method: 'server/discover' })).not.toBe('legacy');
    });
  });

  it('validate request params with specTypeSchemas, which request-params.ts names by spec type', () => {
    for (const name of ['ListToolsRequest', 'CallToolRequest', 'GetPromptRequest', 'ReadResourceRequest', 'SubscribeRequest', 'CompleteRequest', 'SetLevelRequest'] as const) {
      expect(server.specTypeSchemas[name], name).toBeDefined();
    }
    const schema = server.specTypeSchemas.CallToolRequest as unknown as server.StandardSchemaV1Sync<unknown, unknown>;
    expect(schema['~standard'].validate({ method: 'tools/call', params: { name: 'echo', arguments: {} } }).issues).toBeUndefined();
    const wrong = schema['~standard'].validate({ method: 'tools/call', params: { name: 42 } });
    expect(wrong.issues?.length).toBeGreaterThan(0);
  });

  it('recognise an input_required result, which passes through the gateway untouched', () => {
    const result = { resultType: 'input_required', inputRequests: { confirm: { method: 'elicitation/create', params: { message: 'ok?', requestedSchema: { type: 'object', properties: {} } } } } };
    expect(server.isInputRequiredResult(result)).toBe(true);
    expect(client.isInputRequiredResult(result)).toBe(true);
    expect(server.isInputRequiredResult({ content: [] })).toBe(false);
  });

  it('send a ProtocolError message as given, with no prefix of its own (error-mapping.ts removes only SDK 1.x prefixes)', () => {
    const error = new server.ProtocolError(server.ProtocolErrorCode.InvalidParams, 'no such thing');
    expect(error.code).toBe(-32602);
    expect(error.message).not.toMatch(/MCP error -?\d+: MCP error/);
    expect(error.message.endsWith('no such thing')).toBe(true);
  });

  it('each bundle their own ProtocolError class, so an upstream error is recognised by isProtocolError, not instanceof', () => {
    // If this starts failing, the packages share one class again and isProtocolError can become instanceof.
    expect(client.ProtocolError).not.toBe(server.ProtocolError);
    const upstream = new client.ProtocolError(client.ProtocolErrorCode.InvalidParams, 'MCP error -32602: bad argument', { field: 'x' });
    expect(isProtocolError(upstream)).toBe(true);
    const wire = asMcpError(upstream, silentLogger());
    expect(wire).toBeInstanceOf(server.ProtocolError);
    expect({ code: wire.code, message: wire.message, data: wire.data }).toEqual({ code: -32602, message: 'bad argument', data: { field: 'x' } });
  });

  it('frame stdio messages as one JSON object per line', () => {
    const message = { jsonrpc: '2.0' as const, id: 7, method: 'ping' };
    const line = client.serializeMessage(message);
    expect(line.endsWith('\n')).toBe(true);
    expect(line.slice(0, -1)).not.toContain('\n');
    expect(client.deserializeMessage(line.trim())).toEqual(message);
  });

  it('match resource templates the way the resource catalog routes reads', () => {
    const template = new client.UriTemplate('file:///{path}');
    expect(template.match('file:///notes.txt')).toEqual({ path: 'notes.txt' });
    expect(template.match('http://elsewhere/notes.txt')).toBeNull();
  });

  it('seal requestState so that a tampered or foreign state is refused', async () => {
    const codec = server.createRequestStateCodec<{ call: string }>({ key: new Uint8Array(32).fill(7) });
    const sealed = await codec.mint({ call: 'c1' });
    expect(typeof sealed).toBe('string');
    const flipped = sealed.slice(0, -2) + (sealed.endsWith('A') ? 'BB' : 'AA');
    await expect(Promise.resolve().then(() => codec.verify(flipped, undefined as never))).rejects.toThrow();
  });
});
