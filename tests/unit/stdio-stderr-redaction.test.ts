import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/auth/principal.js';
import { Secret } from '../../src/auth/secret.js';
import { UpstreamConnection } from '../../src/upstream/upstream-connection.js';
import { withUserValues } from '../../src/upstream/user-placeholders.js';
import { testConfig, waitFor } from '../helpers/gateway.js';
import { directDeps, loggerInto } from '../helpers/upstream-deps.js';

/** A user's token that no general redaction pattern recognises: only knowing it hides it. */
const USER_TOKEN = 'plain-user-credential-4711';

const alice: Principal = { id: 'alice@example.com', subject: 'alice', groups: [], roles: [], scopes: [], method: 'oauth', token: new Secret(USER_TOKEN) };

/**
 * A per-user stdio instance gets its user's token in its environment (`${user.token}`); a child
 * that prints its environment to stderr must not put that token into the gateway's log.
 */
describe("a stdio child's stderr in the log", () => {
  it("hides the user's token a per-user child prints", async () => {
    const template = testConfig({
      mine: {
        transport: 'stdio',
        shared: false,
        command: process.execPath,
        args: ['-e', "process.stderr.write('starting with credential ' + process.env.TOKEN + '\\n'); process.exit(3)"],
        env: { TOKEN: '${user.token}' },
      },
    }).servers.mine!;
    const lines: string[] = [];
    const connection = new UpstreamConnection(
      'mine',
      withUserValues(template, alice),
      directDeps({ logger: loggerInto(lines), reconnect: { initialDelayMs: 50, maxDelayMs: 100, maxAttempts: 1 } }),
    );
    try {
      connection.start();
      await waitFor(() => lines.some((line) => line.includes('starting with credential')), 15_000, 'the stderr line in the log');
      await waitFor(() => connection.lastError !== undefined, 15_000, 'the failed start');
      const stderrLine = lines.find((line) => line.includes('starting with credential'))!;
      expect(JSON.parse(stderrLine)).toMatchObject({ stream: 'stderr', msg: 'starting with credential [redacted]' });
      expect(lines.join('')).not.toContain(USER_TOKEN);
      expect(connection.lastError).not.toContain(USER_TOKEN);
    } finally {
      await connection.stop();
    }
  });
});
