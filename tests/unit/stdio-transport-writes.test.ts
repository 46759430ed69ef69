import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/observability/logger.js';
import { ChildProcessGroups } from '../../src/upstream/child-processes.js';
import { StdioClientTransport } from '../../src/upstream/stdio-transport.js';

/** A message far larger than a pipe holds, so that its write waits for the child to read. */
const BIG = { jsonrpc: '2.0' as const, method: 'notifications/message', params: { level: 'info', data: 'x'.repeat(4 * 1024 * 1024) } };

/** Runs `body` on a started transport to a child running `script`; the transport is closed and the child gone after, whatever happened. */
async function withTransport<T>(script: string, body: (transport: StdioClientTransport) => Promise<T>): Promise<T> {
  const groups = new ChildProcessGroups();
  const transport = new StdioClientTransport({ command: process.execPath, args: ['-e', script], env: {}, logger: silentLogger(), groups, exitGraceMs: 500 });
  try {
    await transport.start();
    return await body(transport);
  } finally {
    await transport.close();
    groups.killAll();
  }
}

/** How a write of `BIG` to a child running `script` ends when the transport is closed while it waits: 'written', or the error's message. */
function sendWhileClosing(script: string): Promise<string> {
  return withTransport(script, async (transport) => {
    const outcome = transport.send(BIG).then(
      () => 'written',
      (error: Error) => error.message,
    );
    await transport.close();
    return await outcome;
  });
}

describe('writes to a stdio upstream', () => {
  it('fail with the exit of a child that closed its stdin and exited, not with the broken pipe', async () => {
    // Exits with its own code once it has read the first line.
    await withTransport("process.stdin.once('data', () => { process.stdin.destroy(); setTimeout(() => process.exit(5), 50); });", async (transport) => {
      await transport.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
      await expect(transport.send(BIG)).rejects.toThrow(/^process exited with code 5$/);
    });
  });

  it('settle when the transport is closed while a write waits, though the child reads it all and exits', async () => {
    // Reads everything it is sent and exits when its stdin ends. The pipe ends with the write in
    // it: no 'drain' comes after an end, and the send hung. On a loaded host the child may still
    // be reading when the close's grace period ends, and is then stopped by SIGTERM.
    const outcome = await sendWhileClosing("process.stdin.resume(); process.stdin.on('end', () => process.exit(0));");
    expect(outcome).toMatch(/^(written|process exited with code 0|process killed by SIGTERM)$/);
  });

  it('settle when the transport is closed while a write waits for a child that never reads', async () => {
    // The pipe ends with the write waiting: the send fails with the child's end, where it hung before.
    expect(await sendWhileClosing('setInterval(() => {}, 60000)')).toMatch(/^process (killed by SIGTERM|exited with code \d+)$/);
  });
});
