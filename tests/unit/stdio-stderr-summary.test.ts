import { describe, expect, it } from 'vitest';
import { ChildProcessGroups } from '../../src/upstream/child-processes.js';
import { meaningfulStderrLine } from '../../src/upstream/stderr-summary.js';
import { StdioClientTransport } from '../../src/upstream/stdio-transport.js';
import { capturedLog } from '../helpers/captured-log.js';

/** A server that logs a little, then dies of an uncaught exception: Node prints the stack and its version. */
const CRASHING_SERVER = [
  "process.stderr.write('loading configuration\\n');",
  "process.stderr.write('listening on stdio\\n');",
  "function readSettings() { throw new Error('settings.json: unexpected token } in JSON at position 12'); }",
  'readSettings();',
].join('\n');

/** Runs `script` as an upstream process until it exits: what the transport says of the exit, and what it logged. */
async function exitOf(script: string): Promise<{ exit: string | undefined; lines: { msg: string; stderr?: string[] }[] }> {
  const { logger, lines } = capturedLog<{ msg: string; stderr?: string[] }>();
  const groups = new ChildProcessGroups();
  const transport = new StdioClientTransport({ command: process.execPath, args: ['-e', script], env: {}, logger, groups, exitGraceMs: 500 });
  const closed = new Promise<void>((resolve) => (transport.onclose = resolve));
  try {
    await transport.start();
    await closed;
    return { exit: transport.describeExit(), lines };
  } finally {
    await transport.close();
    groups.killAll();
  }
}

describe('the stderr line shown when an upstream process dies', () => {
  it('is the error of a real stack trace, with the whole tail in the debug log', async () => {
    const { exit, lines } = await exitOf(CRASHING_SERVER);
    expect(exit).toBe('process exited with code 1; stderr: Error: settings.json: unexpected token } in JSON at position 12');

    const tail = lines.find((entry) => entry.msg === 'upstream stderr before exit')?.stderr ?? [];
    expect(tail[0]).toBe('loading configuration');
    expect(tail).toContain('Error: settings.json: unexpected token } in JSON at position 12');
    expect(tail.some((line) => line.trim().startsWith('at readSettings'))).toBe(true);
    expect(tail.at(-1)).toBe(`Node.js ${process.version}`);
  });
});

describe('meaningfulStderrLine', () => {
  it("takes Node's error line over the properties printed after its stack", async () => {
    const { exit } = await exitOf("require('node:fs').readFileSync('/no/such/settings-conflux.json')");
    // Node prints `code: 'ENOENT'` (indented) after the stack; the line at the margin says more.
    expect(exit).toBe("process exited with code 1; stderr: Error: ENOENT: no such file or directory, open '/no/such/settings-conflux.json'");
  });

  it("takes a Python traceback's exception, not its frames", () => {
    const traceback = [
      'Traceback (most recent call last):',
      '  File "/srv/errors_server.py", line 3, in <module>',
      '    main()',
      '  File "/srv/errors_server.py", line 2, in main',
      '    raise ValueError("missing API_KEY")',
      'ValueError: missing API_KEY',
    ];
    expect(meaningfulStderrLine(traceback)).toBe('ValueError: missing API_KEY');
  });

  it('takes a system error code over the lines logged after it', () => {
    expect(meaningfulStderrLine(['starting', 'spawn uvx ENOENT', 'shutting down'])).toBe('spawn uvx ENOENT');
  });

  it('falls back to the last non-empty line, skipping Node\'s version trailer', () => {
    expect(meaningfulStderrLine(['starting', 'port 8080 is taken', '', 'Node.js v20.20.2', ''])).toBe('port 8080 is taken');
    expect(meaningfulStderrLine([])).toBeUndefined();
  });
});
