import type { Logger } from 'pino';
import { bestEffort } from '../observability/best-effort.js';
import type { UpstreamRequestOptions } from './upstream-connection.js';

/** What the subscriptions need of a replica. */
export interface SubscribingReplica {
  readonly label: string;
  /** Whether its connection is up (a replica's move waits its turn, and it may be back by then). */
  readonly connected: boolean;
  /**
   * Whether its connection keeps its subscriptions across a reconnect: a 2026-07-28 one holds
   * them in its change stream's filter; a 2025 one starts an upstream session that holds none.
   */
  readonly keepsSubscriptions: boolean;
}

export interface ReplicaSubscriptionsDeps<R extends SubscribingReplica> {
  send(replica: R, method: string, params: Record<string, unknown> | undefined, options?: UpstreamRequestOptions, owner?: unknown): Promise<Record<string, unknown>>;
  /** Another replica that takes requests now (as a request made for no caller is balanced), or undefined. */
  another(except: R): R | undefined;
  logger: Logger;
}

/**
 * The resource subscriptions of a server with `urls`. A subscription belongs to the upstream
 * session it was made on, so its URI stays with that replica: the unsubscribe goes there.
 *
 * - A replica that goes down has its URIs moved to another that takes requests (subscribed
 *   there), so that updates go on; with none to take them they stay, and are subscribed again
 *   on the replica's new upstream session once it is back.
 * - An unsubscribe that failed keeps its URI, marked as not wanted, so that a second one goes
 *   to the same replica; a replica back with a new session drops what is not wanted.
 * - A 2026-07-28 replica keeps its subscriptions across reconnects: those it holds for nobody
 *   (moved away, or not wanted) are unsubscribed there once it is back.
 *
 * What happens to one URI happens in order (a move never overtakes an unsubscribe).
 */
export class ReplicaSubscriptions<R extends SubscribingReplica> {
  readonly #deps: ReplicaSubscriptionsDeps<R>;
  /** Subscribed upstream URI → the replica it was subscribed on; `wanted: false` after a failed unsubscribe. */
  readonly #pinned = new Map<string, { replica: R; wanted: boolean }>();
  /** URIs a 2026-07-28 replica still listens for, moved away from it while it was down. */
  readonly #leftBehind = new Map<R, Set<string>>();
  /** The tail of each URI's queue of work. */
  readonly #queues = new Map<string, Promise<void>>();

  constructor(deps: ReplicaSubscriptionsDeps<R>) {
    this.#deps = deps;
  }

  /** Subscribes on the replica that already holds `uri`, or on the one `balanced` picks. */
  subscribe(uri: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions, owner: unknown, balanced: () => Promise<{ replica: R; result: Record<string, unknown> }>): Promise<Record<string, unknown>> {
    return this.#serially(uri, async () => {
      const pinned = this.#pinned.get(uri);
      if (pinned) {
        const result = await this.#deps.send(pinned.replica, 'resources/subscribe', params, options, owner);
        pinned.wanted = true;
        return result;
      }
      const { replica, result } = await balanced();
      this.#pinned.set(uri, { replica, wanted: true });
      return result;
    });
  }

  /** Unsubscribes where `uri` was subscribed; a URI subscribed nowhere has nothing to undo. The mapping goes once the replica has answered. */
  unsubscribe(uri: string, params: Record<string, unknown> | undefined, options: UpstreamRequestOptions, owner: unknown): Promise<Record<string, unknown>> {
    return this.#serially(uri, async () => {
      const pinned = this.#pinned.get(uri);
      if (!pinned) return {};
      try {
        const result = await this.#deps.send(pinned.replica, 'resources/unsubscribe', params, options, owner);
        this.#pinned.delete(uri);
        return result;
      } catch (error) {
        pinned.wanted = false;
        throw error;
      }
    });
  }

  /** `replica` went down: its wanted URIs move to another replica that takes requests, when there is one. */
  replicaDown(replica: R): void {
    for (const [uri, pinned] of this.#pinned) {
      if (pinned.replica !== replica || !pinned.wanted) continue;
      void this.#serially(uri, async () => {
        const current = this.#pinned.get(uri);
        if (current?.replica !== replica || !current.wanted || replica.connected) return;
        const target = this.#deps.another(replica);
        if (!target) return;
        try {
          await this.#deps.send(target, 'resources/subscribe', { uri });
        } catch (error) {
          this.#deps.logger.debug({ replica: target.label, uri, err: (error as Error).message }, 'could not move a subscription off a replica that went down');
          return;
        }
        this.#pinned.set(uri, { replica: target, wanted: true });
        if (replica.keepsSubscriptions) this.#leaveBehind(replica, uri);
      }).catch(() => undefined);
    }
  }

  /**
   * `replica` is back, with a new upstream session: what is pinned to it and wanted is
   * subscribed again; what is not wanted is dropped (unsubscribed first where the connection
   * kept it), and so is what a 2026-07-28 replica still listens for but was moved away.
   */
  replicaUp(replica: R): void {
    for (const [uri, pinned] of this.#pinned) {
      if (pinned.replica !== replica) continue;
      void this.#serially(uri, async () => {
        const current = this.#pinned.get(uri);
        if (current?.replica !== replica) return;
        if (current.wanted) {
          await bestEffort(() => this.#deps.send(replica, 'resources/subscribe', { uri }), this.#deps.logger, `subscribe to ${uri} again on replica ${replica.label}`);
          return;
        }
        if (replica.keepsSubscriptions) await bestEffort(() => this.#deps.send(replica, 'resources/unsubscribe', { uri }), this.#deps.logger, `unsubscribe from ${uri} on replica ${replica.label}`);
        if (this.#pinned.get(uri) === current) this.#pinned.delete(uri);
      }).catch(() => undefined);
    }
    const left = this.#leftBehind.get(replica);
    if (!left) return;
    this.#leftBehind.delete(replica);
    for (const uri of left) {
      void this.#serially(uri, async () => {
        if (this.#pinned.get(uri)?.replica === replica) return;
        await bestEffort(() => this.#deps.send(replica, 'resources/unsubscribe', { uri }), this.#deps.logger, `unsubscribe from ${uri} on replica ${replica.label}, which no longer holds it`);
      }).catch(() => undefined);
    }
  }

  #leaveBehind(replica: R, uri: string): void {
    let left = this.#leftBehind.get(replica);
    if (!left) this.#leftBehind.set(replica, (left = new Set()));
    left.add(uri);
  }

  /** Runs `work` after whatever is queued for `uri`, whether that succeeded or not. */
  #serially<T>(uri: string, work: () => Promise<T>): Promise<T> {
    const run = (this.#queues.get(uri) ?? Promise.resolve()).then(work);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.#queues.set(uri, tail);
    void tail.then(() => {
      if (this.#queues.get(uri) === tail) this.#queues.delete(uri);
    });
    return run;
  }
}
