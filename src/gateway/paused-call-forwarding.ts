import { randomUUID } from 'node:crypto';
import type { Result } from '@modelcontextprotocol/server';
import type { Logger } from 'pino';
import { z } from 'zod';
import { bestEffort } from '../observability/best-effort.js';
import { RemoteCallError, ReplicaUnreachableError, type BusRpc } from '../state/bus-rpc.js';
import type { OutboundMessage } from './downstream-call.js';
import { asMcpError, invalidRequestState, WireMcpError } from './error-mapping.js';

const TOPIC = {
  /** A retry for a call paused on the addressee (an rpc: answered with the round's result). */
  resume: 'paused-call.resume',
  /** A notification of the call, from its holder to the replica the retry came through. */
  notify: 'paused-call.notify',
  /** The holder still works on the round. */
  alive: 'paused-call.alive',
  /** The client of a forwarded retry left, or the replica it came through is stopping. */
  cancel: 'paused-call.cancel',
} as const;

/**
 * A retry as it crosses the bus: everything the holder needs of the request, the principal
 * included (the bus is trusted; the holder checks it against the state's binding and the call).
 */
export const ForwardedRetrySchema = z.object({
  /** The gateway's `requestState`, as the client sent it. */
  state: z.string(),
  method: z.string(),
  target: z.string(),
  principal: z.string(),
  /** The caller's rate key: a next round is held on its share of the store. */
  caller: z.string(),
  progressToken: z.union([z.string(), z.number()]).optional(),
  inputResponses: z.record(z.string(), z.unknown()).optional(),
});
export type ForwardedRetry = z.infer<typeof ForwardedRetrySchema>;

const ResumeRequest = z.object({ forward: z.string(), retry: ForwardedRetrySchema });
const ForwardEvent = z.object({ forward: z.string() });
/** Why a forwarded round is cancelled; a replica of an older version says nothing, for a client that left. */
const CancelEvent = ForwardEvent.extend({ why: z.enum(['left', 'stopping']).optional() });
const NotifyEvent = ForwardEvent.extend({ notification: z.object({ method: z.string(), params: z.record(z.string(), z.unknown()).optional() }) });
const RoundResult = z.record(z.string(), z.unknown());

/** Where a round sends what the call says meanwhile, and what tells it that its client left. */
export interface RoundChannel {
  signal: AbortSignal;
  notify(notification: OutboundMessage): Promise<void>;
}

/** Serves a forwarded retry on the replica holding its call: the round's result, or the error a client reads. */
export type ResumeHere = (retry: ForwardedRetry, channel: RoundChannel) => Promise<Result>;

/** How often a holder says it still works on a forwarded round (a tool may run for minutes). */
const KEEP_ALIVE_MS = 5_000;
/** Keep-alives the forwarding replica may miss before it gives the holder up (crashed, or cut off). */
const MISSED_KEEP_ALIVES = 3;
/**
 * Keep-alives in a row that must find nobody on the forwarding replica before the holder gives
 * the round up: one can miss while that replica's subscription is renewed (Redis reconnecting).
 */
const UNHEARD_KEEP_ALIVES = 2;
/**
 * The bus call's own bound. Liveness is the keep-alives' business; this only keeps a round
 * whose holder keeps answering "alive" forever from waiting forever.
 */
const ROUND_BOUND_MS = 24 * 60 * 60 * 1000;

/** The holder went quiet for longer than its keep-alives allow. */
class HolderSilentError extends Error {
  override readonly name = 'HolderSilentError';
}

export interface PausedCallForwardingOptions {
  rpc: BusRpc;
  logger: Logger;
  /** Default 5 s; tests shorten it. */
  keepAliveMs?: number | undefined;
}

interface Waiting {
  forward: string;
  holder: string;
  channel: RoundChannel;
  /** Called on every word from the holder: pushes the give-up time back. */
  heard(): void;
}

/**
 * Paused calls across replicas. A 2026-07-28 call paused for its client's input is an upstream
 * request in flight on the replica that paused it, and cannot move; its `requestState` names
 * that replica. A retry landing elsewhere is forwarded here, over the replica bus, to the
 * holder, which resumes the call as if the retry had reached it (checking the state and the
 * principal itself) and answers with the round's result: the call's result, the next
 * `input_required`, or the error a client reads. What the call says during the round
 * (progress, logs) comes back as one-way messages, in order, ahead of the answer, and the
 * forwarding replica passes it to its client; a client leaving is passed to the holder, which
 * cancels the call as it would for its own client.
 *
 * A holder that is gone answers nothing: the bus reports that nobody listens and the retry is
 * refused at once, as an unknown `requestState` (the paused call is no longer available). One
 * that dies during a round is given up after three missed keep-alives, with the same answer.
 *
 * A replica that stops first stops serving retries (its owner calls `serve`'s stop) and `drain`s,
 * lets the rounds in flight both ways run while it drains, and ends them with `close`.
 */
export class PausedCallForwarding {
  readonly #rpc: BusRpc;
  readonly #logger: Logger;
  readonly #keepAliveMs: number;
  /** Retries forwarded from here, waiting for their holder's answer (by forward id). */
  readonly #waiting = new Map<string, Waiting>();
  /** Retries forwarded to here, being served (by forward id). */
  readonly #serving = new Map<string, { origin: string; controller: AbortController }>();
  readonly #unlisten: (() => void)[];
  /** This replica began to stop: a round forwarded from here whose request ends now was cut by it. */
  #draining = false;

  constructor(options: PausedCallForwardingOptions) {
    this.#rpc = options.rpc;
    this.#logger = options.logger;
    this.#keepAliveMs = options.keepAliveMs ?? KEEP_ALIVE_MS;
    this.#unlisten = [
      // Heard until `close`: a round forwarded from here goes on while this replica drains.
      this.#rpc.on(TOPIC.notify, (payload, from) => this.#notified(payload, from)),
      this.#rpc.on(TOPIC.alive, (payload, from) => this.#waitingFor(payload, from)?.heard()),
      this.#rpc.on(TOPIC.cancel, (payload, from) => this.#cancelled(payload, from)),
    ];
  }

  /** Serves retries forwarded to this replica with `resume`; returns the stop. */
  serve(resume: ResumeHere): () => void {
    return this.#rpc.serve(TOPIC.resume, (payload, from) => this.#serveForwarded(payload, from, resume));
  }

  /**
   * Has `holder` serve `retry` and answers as it does: its result, its error as the same
   * JSON-RPC error, its notifications on `channel`. An unreachable or silent holder is the
   * answer to a `requestState` whose call is gone; the client leaving rejects with the
   * signal's reason, once the holder was told.
   */
  async forward(holder: string, retry: ForwardedRetry, channel: RoundChannel): Promise<Result> {
    if (channel.signal.aborted) throw channel.signal.reason;
    const forward = randomUUID();
    const giveUp = new AbortController();
    let silence: NodeJS.Timeout | undefined;
    const heard = () => {
      clearTimeout(silence);
      silence = setTimeout(() => giveUp.abort(new HolderSilentError(`replica ${holder} went quiet during a round`)), this.#keepAliveMs * MISSED_KEEP_ALIVES);
      silence.unref();
    };
    const leave = () => {
      const why = this.#draining ? 'stopping' : 'left';
      void bestEffort(() => this.#rpc.emit(holder, TOPIC.cancel, { forward, why }), this.#logger, 'tell the holder of a paused call that the round ends here');
      giveUp.abort(channel.signal.reason);
    };
    channel.signal.addEventListener('abort', leave, { once: true });
    this.#waiting.set(forward, { forward, holder, channel, heard });
    heard();
    try {
      const answer = await this.#rpc.call(holder, TOPIC.resume, { forward, retry }, { timeoutMs: ROUND_BOUND_MS, signal: giveUp.signal });
      const result = RoundResult.safeParse(answer);
      if (result.success) return result.data as Result;
      this.#logger.warn({ holder }, 'the replica holding a paused call answered a retry with no result');
      throw invalidRequestState();
    } catch (error) {
      throw this.#answerFor(error, holder, channel.signal);
    } finally {
      clearTimeout(silence);
      channel.signal.removeEventListener('abort', leave);
      this.#waiting.delete(forward);
    }
  }

  /**
   * This replica began to stop. Rounds go on both ways (retries forwarded to here are no longer
   * taken once the owner stops `serve`); a request of a round forwarded from here that ends
   * from now on (the drain's end cuts what is left) is reported to its holder as this replica
   * stopping, not as its client leaving.
   */
  drain(): void {
    this.#draining = true;
  }

  /**
   * Ends the rounds still in flight, at the end of this replica's drain (before its bus closes):
   * each holder of a round forwarded from here is told, so that it cancels the call at once
   * rather than when its keep-alives find nobody; the rounds served here for other replicas
   * are cancelled. Then stops listening.
   */
  async close(): Promise<void> {
    const told = [...this.#waiting.values()].map(({ forward, holder }) =>
      bestEffort(() => this.#rpc.emit(holder, TOPIC.cancel, { forward, why: 'stopping' }), this.#logger, 'tell the holder of a paused call that the replica its retry came through is stopping'),
    );
    for (const { controller } of this.#serving.values()) controller.abort('the gateway process holding the paused call is stopping');
    await Promise.all(told);
    for (const unlisten of this.#unlisten) unlisten();
  }

  async #serveForwarded(payload: unknown, origin: string, resume: ResumeHere): Promise<Result> {
    const parsed = ResumeRequest.safeParse(payload);
    if (!parsed.success) throw invalidRequestState();
    const { forward, retry } = parsed.data;
    const controller = new AbortController();
    this.#serving.set(forward, { origin, controller });
    let unheard = 0;
    const keepAlive = setInterval(() => {
      void this.#alive(origin, forward).then((delivered) => {
        // Nobody there twice in a row: the replica is gone, and its client with it.
        unheard = delivered === false ? unheard + 1 : 0;
        if (unheard >= UNHEARD_KEEP_ALIVES) controller.abort('the replica the retry came through is gone');
      });
    }, this.#keepAliveMs);
    keepAlive.unref();
    const notify = async (notification: OutboundMessage) => {
      await this.#rpc.emit(origin, TOPIC.notify, { forward, notification });
    };
    try {
      return await resume(retry, { signal: controller.signal, notify });
    } catch (error) {
      // Mapped here, where the error's type is still known: only its code, message and data cross the bus.
      // A round cut short here answers why (this replica stopping, say), not what the cut did to the call.
      throw asMcpError(controller.signal.aborted ? controller.signal.reason : error, this.#logger);
    } finally {
      clearInterval(keepAlive);
      this.#serving.delete(forward);
    }
  }

  /** Tells the forwarding replica the round goes on: false when nobody is there to hear it. */
  async #alive(origin: string, forward: string): Promise<boolean | void> {
    return this.#rpc.emit(origin, TOPIC.alive, { forward }).catch((error: unknown) => {
      // Asked again at the next beat: one lost message is no sign that the replica is gone.
      this.#logger.debug({ err: error }, 'could not tell a replica that its forwarded retry is still served');
      return undefined;
    });
  }

  #notified(payload: unknown, from: string): void {
    const event = NotifyEvent.safeParse(payload);
    const waiting = event.success ? this.#waitingFor(payload, from) : undefined;
    if (!event.success || !waiting) return;
    waiting.heard();
    void bestEffort(() => waiting.channel.notify(event.data.notification), this.#logger, 'relay a notification of a call paused on another replica');
  }

  /** The forwarded retry an event from `from` is about, when `from` is the replica it was forwarded to. */
  #waitingFor(payload: unknown, from: string): Waiting | undefined {
    const event = ForwardEvent.safeParse(payload);
    const waiting = event.success ? this.#waiting.get(event.data.forward) : undefined;
    return waiting?.holder === from ? waiting : undefined;
  }

  #cancelled(payload: unknown, from: string): void {
    const event = CancelEvent.safeParse(payload);
    const serving = event.success ? this.#serving.get(event.data.forward) : undefined;
    // Only the replica the retry came through speaks for its client.
    if (!event.success || serving?.origin !== from) return;
    const reason = event.data.why === 'stopping' ? 'the gateway process the retry came through is stopping' : 'the client cancelled the request or went away';
    this.#logger.debug({ origin: from, reason }, 'a round forwarded from another replica was cancelled there');
    serving.controller.abort(reason);
  }

  #answerFor(error: unknown, holder: string, signal: AbortSignal): unknown {
    if (signal.aborted) return signal.reason;
    if (error instanceof RemoteCallError && typeof error.remote.code === 'number') {
      return new WireMcpError(error.remote.code, error.remote.message, error.remote.data);
    }
    // Nobody there, gone quiet, or a replica that serves no paused calls: the call is not available.
    if (error instanceof ReplicaUnreachableError || error instanceof HolderSilentError || error instanceof RemoteCallError) {
      this.#logger.debug({ holder, reason: (error as Error).message }, 'a retry named a paused call whose replica cannot resume it');
      return invalidRequestState();
    }
    return error;
  }
}
