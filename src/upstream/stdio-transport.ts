import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { access, constants } from 'node:fs/promises';
import { delimiter, join, resolve as resolvePath } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { deserializeMessage, serializeMessage, type JSONRPCMessage, type Transport } from '@modelcontextprotocol/client';
import { getDefaultEnvironment } from '@modelcontextprotocol/client/stdio';
import type { Logger } from 'pino';
import { NotJsonRpcError } from './errors.js';
import { signalGroup, withParentDeathSignal, type ChildProcessGroups } from './child-processes.js';
import { meaningfulStderrLine } from './stderr-summary.js';

export interface StdioTransportOptions {
  command: string;
  args: readonly string[];
  env: Readonly<Record<string, string>>;
  cwd?: string | undefined;
  logger: Logger;
  groups: ChildProcessGroups;
  /** How long to wait for the child to exit after stdin closes, then after SIGTERM. */
  exitGraceMs?: number;
  /**
   * Hides secrets in the stderr lines logged: a child may print its own environment, which for a
   * per-user instance holds that user's token (`${user.token}`). The connection's redactor.
   */
  redact?: ((text: string) => string) | undefined;
}

/**
 * Client side of the stdio wire. Unlike the SDK's own, it starts the child as the leader of
 * its own process group (so a server's own children are ended with it), registers it for
 * kill-on-exit, sends stderr to the log line by line (redacted), and survives garbage on stdout.
 */
export class StdioClientTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  readonly #options: StdioTransportOptions;
  #pending: Buffer | undefined;
  readonly #queue: JSONRPCMessage[] = [];
  #draining = false;
  #child: ChildProcessWithoutNullStreams | undefined;
  #exited: Promise<void> | undefined;
  #closed = false;
  #exitDescription: string | undefined;
  readonly #stderrTail: string[] = [];
  /** The first line on stdout that was not JSON-RPC, and how many there were. */
  #stray: { first: string; lines: number } | undefined;

  constructor(options: StdioTransportOptions) {
    this.#options = options;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /**
   * The child's stderr (read here, line by line, into the log). Its presence, with `pid`, is how
   * the SDK recognises a stdio wire when it probes for the protocol era: there a server that
   * stays silent on `server/discover` is a 2025 server, not an outage.
   */
  get stderr(): Readable | null {
    return this.#child?.stderr ?? null;
  }

  /**
   * How the child ended and the stderr line that explains it (the error of a stack trace, not
   * its frames): the best explanation of a failed connect. The lines around it are in the log.
   */
  describeExit(): string | undefined {
    if (!this.#exitDescription) return undefined;
    const line = meaningfulStderrLine(this.#stderrTail);
    return line ? `${this.#exitDescription}; stderr: ${line}` : this.#exitDescription;
  }

  /**
   * That the child wrote text on stdout that is not JSON-RPC (a banner, a log line), quoting the
   * first such line: on stdio, stdout carries the protocol alone, and a log line written there
   * can swallow a message. Undefined while stdout carried nothing else.
   */
  describeStrayOutput(): string | undefined {
    if (!this.#stray) return undefined;
    const { first, lines } = this.#stray;
    const more = lines > 1 ? ` (and ${lines - 1} more line${lines > 2 ? 's' : ''})` : '';
    return `wrote non-protocol output on stdout: ${JSON.stringify(first)}${more} — MCP stdio servers must log to stderr`;
  }

  async start(): Promise<void> {
    if (this.#child) throw new Error('StdioClientTransport already started');
    const { command, args, env, cwd, logger, groups } = this.#options;
    const childEnv = { ...getDefaultEnvironment(), ...env };
    const executable = await findExecutable(command, childEnv.PATH, cwd);
    // Closed while the command was looked up (its connection stopped): no child is started.
    if (this.#closed) throw new Error(`"${command}" was not started: its connection was closed`);
    if (!executable) throw new Error(`cannot start "${command}": command not found`);
    const wrapped = withParentDeathSignal(executable, args);
    const child = spawn(wrapped.command, wrapped.args, {
      env: childEnv,
      cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
      windowsHide: true,
    });
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once('close', () => resolve()));

    try {
      await Promise.race([once(child, 'spawn'), new Promise<never>((_, reject) => child.once('error', reject))]);
    } catch (error) {
      throw new Error(`cannot start "${command}": ${describeSpawnError(error)}`, { cause: error });
    }
    const pid = child.pid!;
    groups.track(pid);
    logger.debug({ pid, command }, 'upstream process started');

    child.on('error', (error) => this.onerror?.(error));
    child.once('close', (code, signal) => {
      groups.untrack(pid);
      this.#exitDescription = signal ? `process killed by ${signal}` : `process exited with code ${code}`;
      if (!this.#closed) {
        logger.warn({ pid, code, signal }, 'upstream process exited');
        // The error message shows one stderr line; the whole tail stays next to the exit.
        if (this.#stderrTail.length > 0) logger.debug({ pid, stderr: this.#stderrTail.map((line) => this.#redact(line)) }, 'upstream stderr before exit');
      }
      this.#closed = true;
      this.onclose?.();
    });
    child.stdin.on('error', (error) => this.onerror?.(error));
    child.stdout.on('data', (chunk: Buffer) => this.#receive(chunk));
    createInterface({ input: child.stderr, crlfDelay: Infinity }).on('line', (line) => {
      if (line.trim() === '') return;
      this.#stderrTail.push(line.length > 500 ? `${line.slice(0, 500)}…` : line);
      if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
      logger.info({ stream: 'stderr' }, this.#redact(line));
    });
  }

  #redact(line: string): string {
    return this.#options.redact ? this.#options.redact(line) : line;
  }

  #receive(chunk: Buffer): void {
    let buffer = this.#pending ? Buffer.concat([this.#pending, chunk]) : chunk;
    for (let end = buffer.indexOf(0x0a); end !== -1; end = buffer.indexOf(0x0a)) {
      const line = buffer.toString('utf8', 0, end).replace(/\r$/, '');
      buffer = buffer.subarray(end + 1);
      if (line.trim() === '') continue;
      try {
        this.#queue.push(deserializeMessage(line));
      } catch {
        // Skip the line and go on with the next one; the connection is told what it was, so
        // a request it was meant to answer can say so rather than "connection lost".
        this.#noteStray(line);
        this.onerror?.(new NotJsonRpcError('stdout', line));
      }
    }
    this.#pending = buffer.length > 0 ? buffer : undefined;
    this.#drain();
  }

  /** Counts a line of stdout that is not JSON-RPC, and warns of the first: later ones are only counted. */
  #noteStray(line: string): void {
    if (this.#stray) {
      this.#stray.lines++;
      return;
    }
    const plain = line.replace(ANSI_ESCAPE, '').trim();
    this.#stray = { first: plain.length > STRAY_SAMPLE_CHARS ? `${plain.slice(0, STRAY_SAMPLE_CHARS)}…` : plain, lines: 1 };
    this.#options.logger.warn({ pid: this.pid, line: this.#redact(this.#stray.first) }, 'upstream wrote non-protocol output on stdout, which was skipped; MCP stdio servers must log to stderr');
  }

  /**
   * Delivers queued messages in order, one per turn of the event loop after the first: the SDK
   * handles a notification a microtask after receiving it but a response at once, so a
   * progress report and the answer read in one chunk would otherwise swap places.
   */
  #drain(): void {
    if (this.#draining) return;
    const next = this.#queue.shift();
    if (!next) return;
    this.#draining = true;
    this.onmessage?.(next);
    if (this.#queue.length === 0) {
      this.#draining = false;
      return;
    }
    setImmediate(() => {
      this.#draining = false;
      this.#drain();
    });
  }

  async send(message: JSONRPCMessage): Promise<void> {
    const stdin = this.#child?.stdin;
    if (!stdin || this.#closed || !stdin.writable) throw new Error('upstream process is not running');
    try {
      if (!stdin.write(serializeMessage(message))) await drained(stdin);
    } catch (error) {
      throw await this.#writeFailure(error);
    }
  }

  /**
   * Why a write failed. A broken pipe means the child closed its end, which it does as it exits:
   * its exit (a code, a signal, a stderr line) says far more than "write EPIPE", and which of
   * the two comes first is a race. A child that closed its stdin and goes on running is
   * reported by the pipe error.
   */
  async #writeFailure(error: unknown): Promise<unknown> {
    const broken = error instanceof PipeClosedError || (error as NodeJS.ErrnoException).code === 'EPIPE';
    if (!broken || !(await this.#exitsWithin(EXIT_AFTER_BROKEN_PIPE_MS))) return error;
    return new Error(this.describeExit() ?? 'upstream process exited', { cause: error });
  }

  /** Ends the child: stdin closed first (the polite MCP way), then SIGTERM, then SIGKILL, each after a grace period. */
  async close(): Promise<void> {
    const child = this.#child;
    this.#closed = true;
    if (!child || !this.#exited) return;
    const pid = child.pid!;
    const grace = this.#options.exitGraceMs ?? 2000;
    child.stdin.end();
    if (await this.#exitsWithin(grace)) return;
    signalGroup(pid, 'SIGTERM');
    if (await this.#exitsWithin(grace)) return;
    signalGroup(pid, 'SIGKILL');
    await this.#exited;
  }

  async #exitsWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    try {
      return await Promise.race([this.#exited!.then(() => true as const), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The pipe to the child closed while a write waited for room in it. */
class PipeClosedError extends Error {
  constructor() {
    super('the pipe to the upstream process closed before the message was written');
  }
}

/**
 * Resolves when `stdin` has room again. Rejects when it fails or closes first: a pipe ended (by
 * `close()`, or by the child) with a write waiting never drains, and the send would never settle.
 */
function drained(stdin: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (error?: Error) => {
      stdin.off('drain', onDrain);
      stdin.off('error', onError);
      stdin.off('close', onClose);
      if (error) reject(error);
      else resolve();
    };
    const onDrain = () => settle();
    const onError = (error: Error) => settle(error);
    const onClose = () => settle(new PipeClosedError());
    stdin.on('drain', onDrain);
    stdin.on('error', onError);
    stdin.on('close', onClose);
  });
}

const STDERR_TAIL_LINES = 20;
/** How long a child whose stdin broke is given to exit before the pipe error is reported as it is. */
const EXIT_AFTER_BROKEN_PIPE_MS = 2000;
/** How much of a stray stdout line is quoted: enough to recognise it, short enough for a status line. */
const STRAY_SAMPLE_CHARS = 100;
/** Colour and cursor sequences: a banner is often coloured, and its escape codes would only clutter the quote. */
const ANSI_ESCAPE = /\x1b\[[0-9;?]*[A-Za-z]/g;

/** Resolves `command` the way a shell would, so a missing program is reported before anything is spawned. */
async function findExecutable(command: string, pathVariable: string | undefined, cwd: string | undefined): Promise<string | undefined> {
  const candidates = command.includes('/')
    ? [resolvePath(cwd ?? process.cwd(), command)]
    : (pathVariable ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, command));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

function describeSpawnError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return 'command not found';
  if (code === 'EACCES') return 'permission denied';
  return error instanceof Error ? error.message : String(error);
}
