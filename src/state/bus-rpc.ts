import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { bestEffort } from '../observability/best-effort.js';
import type { ReplicaBus, ReplicaMessage } from './shared-state.js';

/** An error as it crosses the bus: what its handler threw, for the caller's side to map back. */
export interface RemoteErrorShape {
  name: string;
  message: string;
  code?: number | undefined;
  data?: unknown;
}

/** The handler on the other replica failed; `remote` is what it threw. */
export class RemoteCallError extends Error {
  override readonly name = 'RemoteCallError';
  constructor(readonly remote: RemoteErrorShape) {
    super(remote.message);
  }
}

/** Nobody on the bus took the request (the replica is gone), or it never answered in time. */
export class ReplicaUnreachableError extends Error {
  override readonly name = 'ReplicaUnreachableError';

  /**
   * @param absent Nobody listens under that replica's id now: it has stopped, or (for a
   *   moment) its subscription to the bus is being made again. Otherwise it did not answer in
   *   time, or this replica is closing its side.
   */
  constructor(
    message: string,
    readonly absent = false,
  ) {
    super(message);
  }
}

type Served = (payload: unknown, from: string) => unknown;
type Listener = (payload: unknown, from: string) => void;

interface Pending {
  replica: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/**
 * Requests and one-way messages between replicas on the replica bus, by topic: each topic's
 * owner checks its own payloads (the bus only knows they are JSON). A request is answered by
 * whatever serves its topic on the addressee; an error it throws comes back as a
 * `RemoteCallError` with its name, message, and JSON-RPC `code`/`data` when it has them.
 *
 * The sender a handler is given is the one the bus names, which on Redis is what the message
 * itself says: anyone who can publish on that Redis can speak as any replica. Access to Redis
 * is the trust boundary (docs/security.md, "Replicas and Redis").
 */
export class BusRpc {
  readonly #bus: ReplicaBus;
  readonly #logger: Logger;
  readonly #served = new Map<string, Served>();
  readonly #listeners = new Map<string, Set<Listener>>();
  readonly #pending = new Map<string, Pending>();
  #unsubscribe: (() => void) | undefined;

  constructor(bus: ReplicaBus, logger: Logger) {
    this.#bus = bus;
    this.#logger = logger;
    this.#unsubscribe = bus.onMessage((message, from) => this.#receive(message, from));
  }

  /**
   * Asks `replica` to serve `payload` on `topic`. Rejects with `ReplicaUnreachableError` when no
   * replica of that id listens or none answers within `timeoutMs`, with `RemoteCallError` when
   * its handler failed, and with the signal's reason when `signal` aborts first.
   */
  call(replica: string, topic: string, payload: unknown, options: { timeoutMs: number; signal?: AbortSignal | undefined }): Promise<unknown> {
    const id = randomUUID();
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => settle(() => reject(new ReplicaUnreachableError(`replica ${replica} did not answer ${topic} within ${options.timeoutMs} ms`))), options.timeoutMs);
      const onAbort = () => settle(() => reject(signal?.reason as Error));
      const settle = (finish: () => void) => {
        if (!this.#pending.delete(id)) return;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        finish();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(id, {
        replica,
        resolve: (value) => settle(() => resolve(value)),
        reject: (error) => settle(() => reject(error)),
      });
      this.#bus.send(replica, { kind: 'rpc', topic, id, payload }).then(
        (delivered) => {
          if (delivered === false) this.#pending.get(id)?.reject(new ReplicaUnreachableError(`replica ${replica} is not on the bus`, true));
        },
        (error: Error) => this.#pending.get(id)?.reject(error),
      );
    });
  }

  /** Serves `topic`: what `handler` returns (or throws) answers the request. Returns the stop. */
  serve(topic: string, handler: Served): () => void {
    this.#served.set(topic, handler);
    return () => {
      if (this.#served.get(topic) === handler) this.#served.delete(topic);
    };
  }

  /** A one-way message to one replica; false when nobody received it. */
  emit(replica: string, topic: string, payload: unknown): Promise<boolean | void> {
    return this.#bus.send(replica, { kind: 'event', topic, payload });
  }

  /** A one-way message to every other replica. */
  broadcast(topic: string, payload: unknown): Promise<void> {
    return this.#bus.broadcast({ kind: 'event', topic, payload });
  }

  /** Hears one-way messages on `topic`; returns the stop. */
  on(topic: string, listener: Listener): () => void {
    let listeners = this.#listeners.get(topic);
    if (!listeners) this.#listeners.set(topic, (listeners = new Set()));
    listeners.add(listener);
    return () => listeners.delete(listener);
  }

  /** Stops listening and fails every request still waiting. */
  close(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    for (const pending of [...this.#pending.values()]) pending.reject(new ReplicaUnreachableError('this replica is shutting down'));
  }

  #receive(message: ReplicaMessage, from: string): void {
    if (message.kind === 'rpc-reply') {
      const pending = this.#pending.get(message.id);
      // Only the replica asked may answer: an id is not a secret on a shared Redis.
      if (!pending || pending.replica !== from) return;
      if (message.ok) pending.resolve(message.payload);
      else pending.reject(new RemoteCallError(remoteShape(message.payload)));
    } else if (message.kind === 'event') {
      for (const listener of this.#listeners.get(message.topic) ?? []) {
        try {
          listener(message.payload, from);
        } catch (error) {
          this.#logger.error({ err: (error as Error).message, topic: message.topic }, 'a replica event handler failed');
        }
      }
    } else if (message.kind === 'rpc') {
      void this.#serve(message, from);
    }
  }

  async #serve(message: Extract<ReplicaMessage, { kind: 'rpc' }>, from: string): Promise<void> {
    const handler = this.#served.get(message.topic);
    let reply: ReplicaMessage;
    try {
      if (!handler) throw Object.assign(new Error(`nothing serves ${message.topic} here`), { name: 'UnknownTopic' });
      reply = { kind: 'rpc-reply', id: message.id, ok: true, payload: (await handler(message.payload, from)) ?? null };
    } catch (error) {
      reply = { kind: 'rpc-reply', id: message.id, ok: false, payload: errorShape(error) };
    }
    await bestEffort(() => this.#bus.send(from, reply), this.#logger, `answer ${message.topic} from replica ${from}`);
  }
}

function errorShape(error: unknown): RemoteErrorShape {
  // A handler rethrows an aborted signal's reason as it is, often a plain string: it was cut
  // short, which the caller's side tells from a failure by this name.
  if (typeof error === 'string') return { name: 'AbortError', message: error };
  const e: Error & { code?: unknown; data?: unknown } = error instanceof Error ? error : new Error(String(error));
  // A DOMException's numeric `code` (20 for an AbortError) is a legacy DOM code, no JSON-RPC one.
  const code = error instanceof DOMException ? undefined : e.code;
  return {
    name: e.name,
    message: e.message,
    ...(typeof code === 'number' ? { code } : {}),
    ...(e.data !== undefined ? { data: e.data } : {}),
  };
}

function remoteShape(payload: unknown): RemoteErrorShape {
  const p = (payload ?? {}) as Record<string, unknown>;
  return {
    name: typeof p.name === 'string' ? p.name : 'Error',
    message: typeof p.message === 'string' ? p.message : 'the other replica failed',
    ...(typeof p.code === 'number' ? { code: p.code } : {}),
    ...(p.data !== undefined ? { data: p.data } : {}),
  };
}
