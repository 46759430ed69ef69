import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/gateway.js';
import { runCli } from '../helpers/run-cli.js';

/** The package's name, which `npx` runs from any folder (npm's `conflux` is another project). */
const NPX = 'npx conflux-gateway ';

/** The `npx conflux-gateway ...` lines of demo/README.md, each as its arguments (single quotes as a shell reads them). */
async function documentedCommands(): Promise<string[][]> {
  const text = await readFile(join(ROOT, 'demo/README.md'), 'utf8');
  return text
    .split('\n')
    .filter((line) => line.startsWith(NPX))
    .map((line) => [...line.slice(NPX.length).matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!));
}

const textOf = (stdout: string) => (JSON.parse(stdout) as { content: { text?: string }[] }).content.map((c) => c.text ?? '').join('');

// Every command opens the embedded database (created by the first) and starts the demo servers.
describe('demo/README.md', { timeout: 300_000 }, () => {
  it('shows commands that work as written, from the repository root with mcp-servers.yaml', async () => {
    const commands = await documentedCommands();
    expect(commands.map((args) => args.slice(0, 2).join(' '))).toEqual([
      'call files__list_directory',
      'call files__read_text_file',
      'call files__list_allowed_directories',
    ]);
    const dataDir = await mkdtemp(join(tmpdir(), 'conflux-demo-'));
    const outputs: string[] = [];
    for (const args of commands) {
      const result = await runCli(args, { CONFLUX_DATA_DIR: dataDir });
      expect({ args, code: result.code }, result.stderr).toEqual({ args, code: 0 });
      // Progress lines (the embedded database's first start) may be there; no warning or error.
      expect(result.stderr).not.toMatch(/warning|error|ENOENT/i);
      outputs.push(textOf(result.stdout));
    }
    const notes = await readFile(join(ROOT, 'demo/notes.txt'), 'utf8');
    expect(outputs).toEqual(['[FILE] README.md\n[FILE] notes.txt', notes, `Allowed directories:\n${join(ROOT, 'demo')}`]);

    // What the README says about move_file.
    const refused = await runCli(['call', 'files__move_file', '--args', '{"source": "notes.txt", "destination": "moved.txt"}'], { CONFLUX_DATA_DIR: dataDir });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/unknown tool|no tool named/i);
  });
});
