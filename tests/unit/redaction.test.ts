import { describe, expect, it } from 'vitest';
import { publicUrl, redactArguments, redactText, redactUrl, secretArgumentValues, secretsOf, textRedactor } from '../../src/observability/redact.js';
import { publicServerView, redactDefinition } from '../../src/registry/server-view.js';
import type { ServerConfig } from '../../src/config/schema.js';

describe('redactText', () => {
  it('hides a server\'s own env and header values wherever they appear, longest first', () => {
    const text = 'child printed API_KEY value abcd-1234-efgh and its prefix abcd-1234 too';
    expect(redactText(text, ['abcd-1234', 'abcd-1234-efgh'])).toBe('child printed API_KEY value [redacted] and its prefix [redacted] too');
  });

  it('leaves values too short to be secrets alone, so messages stay readable', () => {
    expect(redactText('process exited with code 1', ['1', 'on'])).toBe('process exited with code 1');
  });

  it('hides URL credentials and secret query values, keeping the rest of the URL', () => {
    expect(redactText('connecting to postgres://app:pa55w0rd@db.internal:5432/app?sslmode=require')).toBe(
      'connecting to postgres://[redacted]@db.internal:5432/app?sslmode=require',
    );
    expect(redactText('GET https://api.example.com/v1?apikey=k1&page=2&access_token=t2&password=p3&secret=s4&key=k5')).toBe(
      'GET https://api.example.com/v1?apikey=[redacted]&page=2&access_token=[redacted]&password=[redacted]&secret=[redacted]&key=[redacted]',
    );
  });

  it('hides bearer tokens, credential pairs and common token shapes', () => {
    const cases: [string, string][] = [
      ['Authorization: Bearer abc.def-123456', 'Authorization: Bearer [redacted]'],
      ['API_TOKEN=xyz123 GITHUB_PERSONAL_ACCESS_TOKEN="zzz" password: hunter2', 'API_TOKEN=[redacted] GITHUB_PERSONAL_ACCESS_TOKEN="[redacted]" password: [redacted]'],
      ['{"client_secret":"abc123xyz"}', '{"client_secret":"[redacted]"}'],
      ['token ghp_0123456789abcdefghijABCDEFGHIJ012345 used', 'token [redacted] used'],
      ['key sk-proj-0123456789abcdefghij', 'key [redacted]'],
      ['slack xoxb-123456789012-abcdefghij', 'slack [redacted]'],
      ['jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig-nat_ure', 'jwt [redacted]'],
      ['aws AKIAIOSFODNN7EXAMPLE', 'aws [redacted]'],
      ['-----BEGIN RSA PRIVATE KEY----- MIIEow', '[redacted]'],
    ];
    for (const [input, expected] of cases) expect(redactText(input)).toBe(expected);
  });

  it('keeps ordinary diagnostics intact', () => {
    for (const text of [
      'cannot start "conflux-no-such-command": command not found',
      'process killed by SIGTERM; stderr: signal: SIGTERM received',
      'upstream "alpha" did not answer tools/call within 1s',
      'Missing key: name; token expired',
    ]) {
      expect(redactText(text)).toBe(text);
    }
  });

  it('is stable when applied twice', () => {
    const once = redactText('token=abc https://u:p@h/x?apikey=1 Bearer abcdefgh', ['abcdefgh']);
    expect(redactText(once, ['abcdefgh'])).toBe(once);
  });
});

describe('the secrets of a server definition', () => {
  it('are its env and header values, a header\'s token alone, URL credentials and secret query values', () => {
    const secrets = secretsOf({ url: 'https://me:p%40ss@h.example/mcp?api_key=KEY1&page=2', headers: { Authorization: 'Bearer TOKEN123' }, env: { A: 'envvalue' } });
    expect(secrets).toEqual(expect.arrayContaining(['envvalue', 'Bearer TOKEN123', 'TOKEN123', 'p%40ss', 'p@ss', 'KEY1']));
    expect(secrets).not.toContain('2');
    const redact = textRedactor({ headers: { Authorization: 'Bearer TOKEN123' } });
    expect(redact('server said: bad token TOKEN123')).toBe('server said: bad token [redacted]');
  });

  it('include the values of secret-looking flags in a stdio command line, and nothing else of it', () => {
    const args = [
      '-y', '@acme/mcp-server', '--token', 'tok-12345678', '--API-KEY=xyz-api-1', '--db_password', 's3cret-pw',
      '-secret', 'go-style-1', '--client-secret=cs-9', '--github-token', 'ghtok-2', '--auth', 'auth-value-3', '--Credentials', 'cred-4',
      '--port', '8080', '--author', 'Jane Doe', '--keyboard', 'qwerty', '--db=postgres://app:dsn-pw@db/x', '/srv/data',
    ];
    expect(secretArgumentValues(args).sort()).toEqual(
      ['tok-12345678', 'xyz-api-1', 's3cret-pw', 'go-style-1', 'cs-9', 'ghtok-2', 'auth-value-3', 'cred-4', 'app', 'dsn-pw'].sort(),
    );
    const redact = textRedactor({ args, env: {} });
    expect(redact('fatal: started with --token tok-12345678 --API-KEY=xyz-api-1 -p s3cret-pw on port 8080 by Jane Doe in /srv/data')).toBe(
      'fatal: started with --token [redacted] --API-KEY=[redacted] -p [redacted] on port 8080 by Jane Doe in /srv/data',
    );
    expect(secretsOf({ args: ['--password', 'pw-after-flag'] })).toContain('pw-after-flag');
  });

  it('take the argument after a secret flag whatever it looks like, and none after a flag that ends the list', () => {
    expect(secretArgumentValues(['--password', '-starts-with-dash'])).toEqual(['-starts-with-dash']);
    expect(secretArgumentValues(['serve', '--token'])).toEqual([]);
    expect(secretArgumentValues(['--token='])).toEqual([]);
  });
});

describe('a command line as admins see it', () => {
  it('keeps every flag and argument but the values of secret-looking flags', () => {
    expect(redactArguments(['-y', 'server', '--token', 'abc123', '--api_key=k-1', '--verbose', '-Password', 'pw', '--port', '80'])).toEqual([
      '-y', 'server', '--token', '[redacted]', '--api_key=[redacted]', '--verbose', '-Password', '[redacted]', '--port', '80',
    ]);
  });
});

describe('URLs', () => {
  it('for admins: credentials and secret query values hidden', () => {
    expect(redactUrl('https://user:pw@mcp.example.com:8443/mcp?token=abc&region=eu#top')).toBe('https://[redacted]@mcp.example.com:8443/mcp?token=[redacted]&region=eu#top');
    expect(redactUrl('https://mcp.example.com/mcp')).toBe('https://mcp.example.com/mcp');
  });

  it('for everyone else: scheme, host and port only, as paths may hold keys', () => {
    expect(publicUrl('https://user:pw@mcp.example.com:8443/mcp?token=abc&region=eu#top')).toBe('https://mcp.example.com:8443');
    expect(publicUrl('https://mcp.example.com/mcp/k-0123456789abcdef/sse')).toBe('https://mcp.example.com');
    expect(publicUrl('https://hooks.example.com/services/T000/B000/XXXXSECRET')).toBe('https://hooks.example.com');
    expect(publicUrl('not a url')).toBe('');
  });
});

describe('server views', () => {
  const http: ServerConfig = {
    transport: 'streamable-http',
    url: 'https://u:p@mcp.example.com/mcp?key=k',
    headers: { Authorization: 'Bearer t' },
    enabled: true,
    tags: ['x'],
    separator: '__',
    timeout: 60,
    required: false,
    description: 'remote',
  };
  const stdio: ServerConfig = { transport: 'stdio', command: 'npx', args: ['-y', 'server', '--token=abc'], env: { TOKEN: 'abc' }, enabled: true, tags: [], separator: '__', timeout: 60, required: false };

  it('shows non-admins the public fields and a bare URL, nothing of the command', () => {
    const summary = { name: 'remote', state: 'ready' as const, transport: http.transport, description: 'remote', tags: ['x'], toolCount: 3 };
    expect(publicServerView(summary, http)).toEqual({ ...summary, url: 'https://mcp.example.com' });
    const local = publicServerView({ ...summary, name: 'local', transport: 'stdio' }, stdio);
    expect(local).toEqual({ ...summary, name: 'local', transport: 'stdio' });
  });

  it('shows admins definitions with values hidden', () => {
    expect(redactDefinition(http)).toMatchObject({ url: 'https://[redacted]@mcp.example.com/mcp?key=[redacted]', headers: { Authorization: '[redacted]' } });
    expect(redactDefinition(stdio)).toMatchObject({ command: 'npx', args: ['-y', 'server', '--token=[redacted]'], env: { TOKEN: '[redacted]' } });
  });
});
