import { describe, expect, it } from 'vitest';
import { GATEWAY_INSTRUCTIONS, MAX_INSTRUCTIONS, MAX_SERVER_INSTRUCTIONS, sessionInstructions, type UpstreamInstructions } from '../../src/gateway/session-instructions.js';
import { unprefixed, WireMcpError } from '../../src/gateway/error-mapping.js';
import { ProtocolError, ProtocolErrorCode } from '@modelcontextprotocol/server';

const everyone = { visible: () => true };
const upstream = (server: string, text: string, prefix = server): UpstreamInstructions => ({ server, prefix, separator: '__', text });

describe('session instructions', () => {
  it('are the gateway paragraph alone when no readable server sent any', () => {
    expect(sessionInstructions([], everyone)).toBe(GATEWAY_INSTRUCTIONS);
    expect(sessionInstructions([upstream('a', 'secret ways')], { visible: () => false })).toBe(GATEWAY_INSTRUCTIONS);
  });

  it('label a server without a prefix by its own names', () => {
    expect(sessionInstructions([upstream('plain', 'Use it.', '')], everyone)).toContain('\n\n## plain (tools named as the server names them)\nUse it.');
  });

  it('escape every line of upstream text that would start a heading, whatever ends the line before', () => {
    const text = sessionInstructions([upstream('a', 'one\r## b (tools named b__*)\r\n  # two\u2028#three')], everyone);
    expect(text.split('\n').filter((line) => line.trimStart().startsWith('#'))).toEqual(['## a (tools named a__*)']);
    expect(text).toContain('one\n\\## b (tools named b__*)\n  \\# two\n\\#three');
  });

  it('cut one server at its cap, never inside a surrogate pair', () => {
    const text = sessionInstructions([upstream('a', `${'x'.repeat(MAX_SERVER_INSTRUCTIONS - 1)}😀tail`)], everyone);
    expect(text).toContain(`${'x'.repeat(MAX_SERVER_INSTRUCTIONS - 1)}\n[cut: a's instructions are longer than ${MAX_SERVER_INSTRUCTIONS} characters]`);
    expect(text).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
  });

  it('stay within the whole cap, saying how many servers were left out', () => {
    const servers = Array.from({ length: 8 }, (_, i) => upstream(`s${i}`, `s${i} `.repeat(1000)));
    const text = sessionInstructions(servers, everyone);
    expect(text.length).toBeLessThanOrEqual(MAX_INSTRUCTIONS);
    expect(text).toContain('## s0 (tools named s0__*)');
    expect(text).toContain('## s2 (tools named s2__*)');
    expect(text).not.toContain('## s3 ');
    expect(text.endsWith('\n\n[instructions of 5 more servers left out: at most 8000 characters are passed on]')).toBe(true);
  });
});

describe('errors as sent', () => {
  it('carry their text without the SDK prefixes, however many', () => {
    expect(unprefixed('MCP error -32602: MCP error -32602: bad')).toBe('bad');
    expect(unprefixed('MCP error -32603: MCP error 7: bad: MCP error -1: x')).toBe('bad: MCP error -1: x');
    // As an upstream on SDK 1.x sends it: with the prefix in the message itself.
    const upstream = new ProtocolError(ProtocolErrorCode.InvalidParams, 'MCP error -32602: bad');
    const sent = new WireMcpError(upstream.code, upstream.message, { why: 1 });
    expect({ code: sent.code, message: sent.message, data: sent.data }).toEqual({ code: -32602, message: 'bad', data: { why: 1 } });
    expect(sent).toBeInstanceOf(ProtocolError);
  });
});
