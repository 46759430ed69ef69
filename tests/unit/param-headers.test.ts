import { describe, expect, it } from 'vitest';
import { offersMethod } from '../../src/upstream/offered-methods.js';
import { MAX_PARAM_HEADER_BYTES, MAX_PARAM_HEADERS_TOTAL_BYTES, paramHeaders } from '../../src/upstream/param-headers.js';

const schema = (properties: Record<string, unknown>) => ({ type: 'object', properties });

describe('Mcp-Param headers of a tool call', () => {
  it('mirrors each declared primitive argument, nested ones too, as the SDK client does', () => {
    const tool = schema({
      region: { type: 'string', 'x-mcp-header': 'Region' },
      count: { type: 'integer', 'x-mcp-header': 'Count' },
      dry: { type: 'boolean', 'x-mcp-header': 'Dry-Run' },
      target: { type: 'object', properties: { zone: { type: 'string', 'x-mcp-header': 'Zone' } } },
      note: { type: 'string' },
    });
    expect(paramHeaders(tool, { region: 'eu', count: 3, dry: false, target: { zone: 'b' }, note: 'x' })).toEqual({
      'Mcp-Param-Region': 'eu',
      'Mcp-Param-Count': '3',
      'Mcp-Param-Dry-Run': 'false',
      'Mcp-Param-Zone': 'b',
    });
  });

  it('sends nothing for an absent, null or non-primitive value, and base64-encodes what a header cannot carry', () => {
    const tool = schema({ region: { type: 'string', 'x-mcp-header': 'Region' } });
    expect(paramHeaders(tool, {})).toEqual({});
    expect(paramHeaders(tool, { region: null })).toEqual({});
    expect(paramHeaders(tool, { region: ['eu'] })).toEqual({});
    expect(paramHeaders(tool, undefined)).toEqual({});
    expect(paramHeaders(tool, { region: 'zürich' })).toEqual({ 'Mcp-Param-Region': `=?base64?${Buffer.from('zürich').toString('base64')}?=` });
    expect(paramHeaders(tool, { region: ' eu' })).toEqual({ 'Mcp-Param-Region': `=?base64?${Buffer.from(' eu').toString('base64')}?=` });
  });

  it('sends none at all for a schema whose declarations are unusable', () => {
    expect(paramHeaders(schema({ a: { type: 'string', 'x-mcp-header': 'Bad Name' } }), { a: 'x' })).toEqual({});
    expect(paramHeaders(schema({ a: { type: 'object', 'x-mcp-header': 'A' } }), { a: {} })).toEqual({});
    expect(paramHeaders(schema({ a: { type: 'string', 'x-mcp-header': 'Same' }, b: { type: 'string', 'x-mcp-header': 'same' } }), { a: 'x', b: 'y' })).toEqual({});
    expect(paramHeaders(undefined, { a: 'x' })).toEqual({});
  });

  it("follows a tool's schema as its upstream lists it anew, though each schema's declarations are found once", () => {
    const before = schema({ region: { type: 'string', 'x-mcp-header': 'Region' } });
    expect(paramHeaders(before, { region: 'eu', zone: 'b' })).toEqual({ 'Mcp-Param-Region': 'eu' });
    expect(paramHeaders(before, { region: 'us' })).toEqual({ 'Mcp-Param-Region': 'us' });
    const after = schema({ region: { type: 'string' }, zone: { type: 'string', 'x-mcp-header': 'Zone' } });
    expect(paramHeaders(after, { region: 'eu', zone: 'b' })).toEqual({ 'Mcp-Param-Zone': 'b' });
    const unusable = schema({ a: { type: 'object', 'x-mcp-header': 'A' } });
    expect(paramHeaders(unusable, { a: {} })).toEqual({});
    expect(paramHeaders(unusable, { a: {} })).toEqual({});
  });
});

describe('the caps on Mcp-Param header values', () => {
  const tool = schema({ a: { type: 'string', 'x-mcp-header': 'A' }, b: { type: 'string', 'x-mcp-header': 'B' }, c: { type: 'object', properties: { d: { type: 'string', 'x-mcp-header': 'D' } } } });

  it('refuses one value over the cap, counted encoded, with -32602 naming the argument', () => {
    expect(paramHeaders(tool, { a: 'x'.repeat(MAX_PARAM_HEADER_BYTES) })).toEqual({ 'Mcp-Param-A': 'x'.repeat(MAX_PARAM_HEADER_BYTES) });
    expect(() => paramHeaders(tool, { a: 'x'.repeat(MAX_PARAM_HEADER_BYTES + 1) })).toThrow(expect.objectContaining({ code: -32602, message: expect.stringContaining('the argument "a" is too long') }));
    // 3,100 characters of 'ü' are 6,200 bytes, base64-encoded to more than the cap.
    expect(() => paramHeaders(tool, { c: { d: 'ü'.repeat(3100) } })).toThrow(expect.objectContaining({ code: -32602, message: expect.stringContaining('the argument "c.d"') }));
    // Uncapped, to compare with what a caller sent.
    expect(paramHeaders(tool, { a: 'x'.repeat(MAX_PARAM_HEADER_BYTES + 1) }, { capped: false })).toEqual({ 'Mcp-Param-A': 'x'.repeat(MAX_PARAM_HEADER_BYTES + 1) });
  });

  it('refuses values that are each under the cap but over the total together', () => {
    const each = 'x'.repeat(MAX_PARAM_HEADERS_TOTAL_BYTES / 2 - 10);
    expect(Object.keys(paramHeaders(tool, { a: each, b: each }))).toHaveLength(2);
    expect(() => paramHeaders(tool, { a: each, b: each, c: { d: 'x'.repeat(100) } })).toThrow(expect.objectContaining({ code: -32602, message: expect.stringContaining('too long together') }));
  });
});

describe('methods a server offers', () => {
  it('reads the capability each method needs; methods no capability governs are offered', () => {
    expect(offersMethod({ prompts: {} }, 'completion/complete')).toBe(false);
    expect(offersMethod({ completions: {} }, 'completion/complete')).toBe(true);
    expect(offersMethod({ resources: {} }, 'resources/read')).toBe(true);
    expect(offersMethod({ resources: {} }, 'resources/subscribe')).toBe(false);
    expect(offersMethod({ resources: { subscribe: true } }, 'resources/subscribe')).toBe(true);
    expect(offersMethod({}, 'tools/call')).toBe(false);
    expect(offersMethod({}, 'tasks/get')).toBe(true);
    expect(offersMethod({}, 'toString')).toBe(true);
  });
});
