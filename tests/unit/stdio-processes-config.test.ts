import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';

const parse = (text: string) => parseConfig(text, { source: 'test.yaml', env: {} });

describe('processes on a stdio server', () => {
  it('is per_worker unless given (left out of the definition), and takes one', () => {
    const config = parse(`
servers:
  everywhere: { command: npx, args: [a] }
  once: { command: npx, args: [b], processes: one }
  explicit: { command: npx, args: [c], processes: per_worker }
`);
    expect(config.servers.everywhere).not.toHaveProperty('processes');
    expect(config.servers.once).toMatchObject({ transport: 'stdio', processes: 'one' });
    expect(config.servers.explicit).toMatchObject({ processes: 'per_worker' });
  });

  it('refuses one on a server with a process per user, and values it does not know', () => {
    expect(() => parse('servers:\n  notes: { command: npx, shared: false, processes: one }\n')).toThrow(
      /servers\.notes\.processes: processes: one runs one process for everybody, which a shared: false server/,
    );
    expect(() => parse('servers:\n  notes: { command: npx, processes: two }\n')).toThrow(/servers\.notes\.processes: expected per_worker or one/);
    // A shared: false server keeps its process per user as ever.
    expect(parse('servers:\n  notes: { command: npx, shared: false, processes: per_worker }\n').servers.notes).toMatchObject({ shared: false });
  });

  it('is a stdio key only: an HTTP server runs no process', () => {
    expect(() => parse('servers:\n  remote: { url: "http://127.0.0.1:1/mcp", processes: one }\n')).toThrow(/servers\.remote.*processes/);
  });
});
