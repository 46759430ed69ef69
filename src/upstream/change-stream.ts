import { ProtocolError, ProtocolErrorCode, type Client, type ServerCapabilities } from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import { bestEffort } from '../observability/best-effort.js';
import type { BackoffPolicy } from './backoff.js';
import { UpstreamConnectionLostError } from './errors.js';
import { describeError } from './failure-classification.js';
import { ListSubscription, listenFilter } from './list-subscription.js';

export interface ChangeStreamOptions {
  server: string;
  /** The resources subscribed to: the connection's, kept across its sessions. */
  subscriptions: Set<string>;
  backoff: BackoffPolicy;
  logger: Logger;
  redact: (text: string) => string;
}

/**
 * A 2026-07-28 connection's `subscriptions/listen` stream: list changes and resource updates
 * arrive only there, and resource subscriptions are part of its filter, since that revision has
 * no `resources/subscribe`.
 */
export class ChangeStream {
  #stream: ListSubscription | undefined;

  constructor(private readonly options: ChangeStreamOptions) {}

  /**
   * Opens the stream for the lists the server says change and the resources subscribed to (none
   * opens until there is something to hear). `onReopened` runs when a stream is opened again
   * after one ended.
   */
  async open(client: Client, timeoutMs: number, onReopened: () => void): Promise<void> {
    const stream = new ListSubscription({
      client,
      filter: () => listenFilter(client.getServerCapabilities(), this.options.subscriptions),
      backoff: this.options.backoff,
      timeoutMs,
      onReopened,
      logger: this.options.logger,
    });
    this.#stream = stream;
    await stream.start();
  }

  close(): void {
    const stream = this.#stream;
    this.#stream = undefined;
    if (stream) void bestEffort(() => stream.stop(), this.options.logger, 'close the upstream list-change stream');
  }

  /**
   * `resources/subscribe` and `resources/unsubscribe`: the URI joins or leaves the filter, and
   * the stream is replaced by one with the new filter. A subscribe the stream could not take is
   * undone; an unsubscribe never is (the client let go of the resource whatever the upstream
   * says, and the connection forgot it before asking): the next stream opened, on a retry or a
   * reconnect, has the filter without it.
   */
  async change(method: 'resources/subscribe' | 'resources/unsubscribe', uri: unknown, capabilities: ServerCapabilities | undefined): Promise<Record<string, unknown>> {
    const { server, subscriptions } = this.options;
    if (typeof uri !== 'string') throw new ProtocolError(ProtocolErrorCode.InvalidParams, `${method} needs a uri`);
    if (!capabilities?.resources?.subscribe) throw new ProtocolError(ProtocolErrorCode.MethodNotFound, `"${server}" offers no resource subscriptions`);
    const subscribing = method === 'resources/subscribe';
    if (subscribing) {
      if (subscriptions.has(uri)) return {};
      subscriptions.add(uri);
    } else {
      subscriptions.delete(uri);
    }
    try {
      await this.#stream?.refilter();
      return {};
    } catch (error) {
      if (subscribing) subscriptions.delete(uri);
      if (error instanceof ProtocolError) throw error;
      throw new UpstreamConnectionLostError(server, method, this.options.redact(describeError(error)));
    }
  }
}
