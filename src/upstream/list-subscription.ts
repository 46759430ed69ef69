import type { Client, McpSubscription, ServerCapabilities, SubscriptionFilter } from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import { backoffDelay, type BackoffPolicy } from './backoff.js';
import { describeError } from './failure-classification.js';
import { bestEffort } from '../observability/best-effort.js';

export interface ListSubscriptionOptions {
  client: Client;
  /** What the stream should carry now; undefined when nothing (then no stream is open). */
  filter: () => SubscriptionFilter | undefined;
  backoff: BackoffPolicy;
  /** How long to wait for the server to acknowledge a stream. */
  timeoutMs: number;
  /** A stream was opened again after one ended: changes may have been missed in between. */
  onReopened: () => void;
  logger: Logger;
}

/**
 * The `subscriptions/listen` filter for an upstream: the lists it says change (its
 * `listChanged` capabilities) and the resources subscribed to, when it offers subscriptions;
 * undefined when that is nothing and a stream would carry nothing.
 */
export function listenFilter(capabilities: ServerCapabilities | undefined, resources: Iterable<string> = []): SubscriptionFilter | undefined {
  const uris = capabilities?.resources?.subscribe ? [...resources] : [];
  const filter: SubscriptionFilter = {
    ...(capabilities?.tools?.listChanged ? { toolsListChanged: true } : {}),
    ...(capabilities?.prompts?.listChanged ? { promptsListChanged: true } : {}),
    ...(capabilities?.resources?.listChanged ? { resourcesListChanged: true } : {}),
    ...(uris.length > 0 ? { resourceSubscriptions: uris } : {}),
  };
  return Object.keys(filter).length > 0 ? filter : undefined;
}

/**
 * The `subscriptions/listen` stream of a 2026-07-28 connection, kept open while the connection
 * lives. On that revision list changes and resource updates arrive only on such a stream; the
 * SDK hands what it carries to the client's notification handlers, the same ones that take a
 * 2025 server's unsolicited notifications. A stream that ends (the server restarted, the
 * network dropped it) is opened again after a backoff, and `onReopened` refreshes the lists. A
 * new filter (a resource subscribed to) opens a new stream before the old one is closed, so
 * nothing falls between them. Streams are opened one at a time, each with the filter as it is
 * when its turn comes: of subscriptions made together the last stream has every one, and each
 * stream replaced is closed.
 */
export class ListSubscription {
  readonly #options: ListSubscriptionOptions;
  #current: McpSubscription | undefined;
  #retry: NodeJS.Timeout | undefined;
  #failures = 0;
  #stopped = false;
  /** The last stream change queued (opening, replacing, closing): the next waits for it. */
  #turn: Promise<unknown> = Promise.resolve();

  constructor(options: ListSubscriptionOptions) {
    this.#options = options;
  }

  /** Opens the stream; resolves once the server acknowledged it or the first attempt failed (it is retried). */
  async start(): Promise<void> {
    try {
      await this.#inTurn(() => this.#open(false));
    } catch (error) {
      this.#options.logger.warn({ err: describeError(error) }, 'could not open the upstream change stream');
      this.#reopenLater();
    }
  }

  /** Replaces the stream with one for the current filter; rejects (keeping the old stream) when the server refuses it. */
  refilter(): Promise<void> {
    return this.#inTurn(async () => {
      clearTimeout(this.#retry);
      this.#retry = undefined;
      if (this.#options.filter() === undefined) {
        const previous = this.#current;
        this.#current = undefined;
        await previous?.close();
        return;
      }
      try {
        await this.#open(false);
      } catch (error) {
        // Without a stream (the last one ended and its retry was waiting) keep trying, with the
        // filter as it will be then.
        if (!this.#current) this.#reopenLater();
        throw error;
      }
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    const current = this.#current;
    this.#current = undefined;
    await current?.close();
  }

  /** Runs `change` once every change queued before it is done (failed or not). */
  #inTurn(change: () => Promise<void>): Promise<void> {
    const run = this.#turn.then(change);
    this.#turn = run.catch(() => {});
    return run;
  }

  /** Opens a stream for the filter as it is now, in place of the current one (closed once the new one is acknowledged). Call in turn. */
  async #open(reopening: boolean): Promise<void> {
    const { client, timeoutMs, logger } = this.#options;
    const filter = this.#options.filter();
    if (this.#stopped || !client.transport || !filter) return;
    const subscription = await client.listen(filter, { timeout: timeoutMs });
    if (this.#stopped) {
      await subscription.close();
      return;
    }
    const previous = this.#current;
    this.#current = subscription;
    if (previous) await bestEffort(() => previous.close(), logger, 'close a replaced upstream change stream');
    const openedAt = Date.now();
    if (reopening) this.#options.onReopened();
    void subscription.closed.then((reason) => {
      if (this.#current !== subscription) return; // replaced by a new filter's stream, or stopped
      this.#current = undefined;
      if (this.#stopped || reason === 'local') return;
      // A stream that stayed up a while was healthy: the next one starts from a short delay.
      if (Date.now() - openedAt >= this.#options.backoff.maxDelayMs) this.#failures = 0;
      logger.info({ reason }, 'upstream change stream ended; opening it again');
      this.#reopenLater();
    });
  }

  #reopenLater(): void {
    if (this.#stopped) return;
    const delay = backoffDelay(this.#failures++, this.#options.backoff);
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      // A stream opened meanwhile (for a new filter) makes this one needless.
      this.#inTurn(() => (this.#current ? Promise.resolve() : this.#open(true))).catch((error: unknown) => {
        this.#options.logger.warn({ err: describeError(error) }, 'could not reopen the upstream change stream');
        this.#reopenLater();
      });
    }, delay);
    this.#retry.unref();
  }
}
