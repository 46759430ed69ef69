import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import type { Config } from './schema.js';

export interface UnstartableServer {
  path: (string | number)[];
  message: string;
}

/**
 * The enabled stdio servers that cannot start as configured: a `cwd` that is not a folder, a
 * command that is not on PATH or not an executable file. `validate` refuses these; `serve`
 * warns and starts the rest (the server then shows as down, with the same reason).
 * `pathVariable` is the gateway's PATH, which a server's own `env.PATH` replaces, as when the
 * process is started.
 */
export async function unstartableServers(config: Config, pathVariable: string | undefined): Promise<UnstartableServer[]> {
  const found: UnstartableServer[] = [];
  for (const [name, server] of Object.entries(config.servers)) {
    if (server.transport !== 'stdio' || !server.enabled) continue;
    const path = ['servers', name];
    if (server.cwd !== undefined) {
      const folder = resolve(server.cwd);
      const isFolder = await stat(folder).then((s) => s.isDirectory(), () => undefined);
      if (isFolder !== true) {
        found.push({ path: [...path, 'cwd'], message: isFolder === false ? `${folder} is not a folder` : `folder ${folder} does not exist` });
        continue;
      }
    }
    // A per-user server's command may name the user; it is known only when an instance starts.
    if (server.command.includes('${user.')) continue;
    const problem = await commandProblem(server.command, server.cwd, server.env.PATH ?? pathVariable);
    if (problem) found.push({ path: [...path, 'command'], message: problem });
  }
  return found;
}

async function commandProblem(command: string, cwd: string | undefined, pathVariable: string | undefined): Promise<string | undefined> {
  if (command.includes('/') || command.includes('\\')) {
    const file = resolve(cwd ?? '.', command);
    const kind = await stat(file).then((s) => (s.isFile() ? 'file' : 'other'), () => 'missing');
    if (kind === 'missing') return `${file} does not exist`;
    if (kind === 'other') return `${file} is not a file`;
    return (await isExecutable(file)) ? undefined : `${file} is not executable (chmod +x)`;
  }
  const folders = (pathVariable ?? '').split(delimiter).filter(Boolean);
  for (const folder of folders) {
    if (await isExecutable(join(folder, command))) return undefined;
  }
  return `"${command}" is not found on PATH${folders.length === 0 ? ' (PATH is empty)' : ''}`;
}

function isExecutable(file: string): Promise<boolean> {
  return access(file, constants.X_OK).then(
    () => true,
    () => false,
  );
}
