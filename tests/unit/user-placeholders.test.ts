import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/principal.js';
import { Secret } from '../../src/auth/secret.js';
import { parseConfig } from '../../src/config/load.js';
import type { ServerConfig } from '../../src/config/schema.js';
import { substituteUser, userValues, withUserValues } from '../../src/upstream/user-placeholders.js';

const alice: Principal = {
  id: 'alice@example.com',
  subject: 'u-alice',
  email: 'alice@example.com',
  groups: ['dev', 'ops'],
  roles: [],
  scopes: [],
  method: 'jwt',
  token: new Secret('alice-token-123'),
};

/** A server definition as the config loader leaves it (its `${VAR}` pass does not touch `${user.*}`). */
function server(definition: Record<string, unknown>): ServerConfig {
  return parseConfig(JSON.stringify({ servers: { s: definition } }), { source: 'test', env: { HOME_DIR: '/home' } }).servers.s!;
}

describe('user placeholders', () => {
  it('stand for the principal: id, subject, email, groups comma-joined, and its own credential', () => {
    const values = userValues(alice);
    expect(values).toEqual({ id: 'alice@example.com', sub: 'u-alice', email: 'alice@example.com', groups: 'dev,ops', token: 'alice-token-123' });
    expect(substituteUser('${user.sub}:${user.groups}:${user.sub}', values)).toBe('u-alice:dev,ops:u-alice');
  });

  it('become empty without a user (the template instance), and unknown names stay as written', () => {
    expect(substituteUser('a${user.token}b${user.email}c', userValues(undefined))).toBe('abc');
    expect(substituteUser('${user.phone} ${user}', userValues(alice))).toBe('${user.phone} ${user}');
  });

  it("fill a stdio server's env and args, and pass the config loader untouched", () => {
    const config = server({ command: 'srv', args: ['--user', '${user.id}', '--home', '${HOME_DIR}'], env: { WHO: '${user.sub}', TOKEN: '${user.token}', FIXED: 'x' } });
    const filled = withUserValues(config, alice);
    expect(filled.transport === 'stdio' && filled.args).toEqual(['--user', 'alice@example.com', '--home', '/home']);
    expect(filled.transport === 'stdio' && filled.env).toEqual({ WHO: 'u-alice', TOKEN: 'alice-token-123', FIXED: 'x' });
    // The definition itself keeps its placeholders: the values live only in the user's instance.
    expect(config.transport === 'stdio' && config.env.TOKEN).toBe('${user.token}');
    const template = withUserValues(config, undefined);
    expect(template.transport === 'stdio' && template.env).toEqual({ WHO: '', TOKEN: '', FIXED: 'x' });
  });

  it("fill an HTTP server's headers", () => {
    const config = server({ url: 'https://mcp.example.com/mcp', shared: false, headers: { authorization: 'Bearer ${user.token}', 'x-user': '${user.email}' } });
    const filled = withUserValues(config, alice);
    expect(filled.transport !== 'stdio' && filled.headers).toEqual({ authorization: 'Bearer alice-token-123', 'x-user': 'alice@example.com' });
  });
});
