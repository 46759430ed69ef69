import { existsSync } from 'node:fs';

/**
 * Keeps the process-group ids of every child the gateway spawned, so that a gateway that
 * exits for any reason (normal exit, signal, uncaught error) takes its children with it.
 * SIGKILL of the gateway cannot be handled; for that, children are started under
 * `setpriv --pdeathsig SIGKILL` where the system has it, so the kernel ends them.
 */
export class ChildProcessGroups {
  readonly #groups = new Set<number>();
  readonly #onExit = () => this.killAll();
  #installed = false;

  /** Starts killing every tracked group when this process exits. */
  installExitHook(): void {
    if (this.#installed) return;
    process.on('exit', this.#onExit);
    this.#installed = true;
  }

  removeExitHook(): void {
    process.off('exit', this.#onExit);
    this.#installed = false;
  }

  track(pid: number): void {
    this.#groups.add(pid);
  }

  untrack(pid: number): void {
    this.#groups.delete(pid);
  }

  get size(): number {
    return this.#groups.size;
  }

  /** Synchronous on purpose: it runs inside the process 'exit' event. */
  killAll(): void {
    for (const pid of this.#groups) signalGroup(pid, 'SIGKILL');
    this.#groups.clear();
  }
}

/** Signals a whole process group (children are group leaders), falling back to the process itself. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

const SETPRIV = '/usr/bin/setpriv';

/** The command line that starts `command`, wrapped so the kernel kills it if the gateway dies. */
export function withParentDeathSignal(command: string, args: readonly string[]): { command: string; args: string[] } {
  if (process.platform === 'linux' && existsSync(SETPRIV)) {
    return { command: SETPRIV, args: ['--pdeathsig', 'SIGKILL', '--', command, ...args] };
  }
  return { command, args: [...args] };
}
