import { randomUUID } from 'node:crypto';
import { createRequestStateCodec, type InputRequiredResult, type RequestStateCodec, type Result, type ServerContext } from '@modelcontextprotocol/server';
import type { Logger } from 'pino';
import type { BusRpc } from '../state/bus-rpc.js';
import type { DownstreamCall, OutboundMessage } from './downstream-call.js';
import { invalidRequestState, missingInputResponses, tooManyPausedCalls, tooManyPausedCallsOfCaller, unansweredRequest } from './error-mapping.js';
import { accessIn } from './mcp-handlers.js';
import { PausedCallForwarding, type ForwardedRetry, type RoundChannel } from './paused-call-forwarding.js';
import { InMemoryPausedCalls, type PausedCall, type PausedCallStore } from './paused-calls.js';

/**
 * What the gateway's own `requestState` starts with. An upstream's state never reaches this
 * code (it passes through both ways), so the prefix is what tells a retry for a call paused
 * here from a retry for a 2026 upstream; the SDK codec's own `v1.` would not, since an
 * upstream built on the same SDK writes it too.
 */
const STATE_PREFIX = 'conflux.paused.';

/** Whether `state` (a retry's `requestState`) is one the gateway minted, rather than an upstream's. */
export function isGatewayState(state: unknown): state is string {
  return typeof state === 'string' && state.startsWith(STATE_PREFIX);
}

/** What the sealed state says: which paused call, on which replica, and for which tool, prompt or URI. */
interface StatePayload {
  id: string;
  target: string;
  replica: string;
}

/**
 * A replica id as a state may name it (the ids are UUIDs); anything else names no replica,
 * and is refused before a message is addressed to it.
 */
const REPLICA_ID = /^[A-Za-z0-9-]{1,64}$/;

/**
 * The gateway's state is `conflux.paused.<sealed>.<replica>`: the codec's sealed value, then
 * the replica holding the call, in the clear so that any replica can route the retry without
 * the key (the holder checks it against the copy inside the seal). Undefined when malformed.
 */
function splitState(state: string): { sealed: string; holder: string } | undefined {
  const dot = state.lastIndexOf('.');
  if (dot <= STATE_PREFIX.length) return undefined;
  const holder = state.slice(dot + 1);
  return REPLICA_ID.test(holder) ? { sealed: state.slice(STATE_PREFIX.length, dot), holder } : undefined;
}

/**
 * What a state is bound to: the method, and the principal the request was authenticated as.
 * The codec hands the context `mint` and `verify` are given to `bind` alone, so this stands
 * in for it, and a retry forwarded from another replica is checked exactly as one received here.
 */
interface Binding {
  method: string;
  principal: string;
}

function bindingOf(request: RoundRequest): ServerContext {
  const binding: Binding = { method: request.method, principal: request.principal() };
  return binding as unknown as ServerContext;
}

/** The keys the gateway gives the input requests it sends, by method (a counter makes each unique within the call). */
const KEY_NAMES: Record<string, string> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};

type Settled = { ok: true; result: Result } | { ok: false; error: unknown };
type Step = { kind: 'done'; settled: Settled } | { kind: 'input'; requests: Record<string, OutboundMessage> };

/** An upstream's request to the client, waiting to be sent in a round and answered by a retry. */
interface PendingInput {
  request: OutboundMessage;
  /** Sent to the client in an `input_required` round already. */
  asked: boolean;
  resolve(answer: Record<string, unknown>): void;
  reject(error: Error): void;
}

/**
 * One request of a call, whether it reached this replica or was forwarded to it by another:
 * what a round needs of it. Messages about the call go to `notify` (progress under the
 * request's own token).
 */
interface RoundRequest extends RoundChannel {
  method: string;
  /** The tool or prompt name, or the URI, the request names. */
  target: string;
  /** The caller's rate key, which its share of the store is counted by. */
  caller: string;
  progressToken: string | number | undefined;
  /** The principal the request was authenticated as, read when a state is sealed or checked. */
  principal(): string;
}

/** A first request as `ModernCallBridge.start` takes it: a round's request, its principal known. */
export type FirstRequest = Omit<RoundRequest, 'notify' | 'principal'> & { principal: string };

/** The request a call is being served in just now: where messages about the call go. */
type Round = Pick<RoundRequest, 'notify' | 'progressToken'>;

/**
 * One 2026-07-28 call whose upstream may ask the client things mid-call, over all its rounds.
 * The upstream work runs once, from the first request to the last; each request of the client
 * (the first, then every retry) is a round that waits for the work to end or to ask something.
 */
class BridgedCall {
  readonly #controller = new AbortController();
  readonly #pending = new Map<string, PendingInput>();
  #settled: Settled | undefined;
  /** Wakes `next()` when the work asks something or ends. */
  #wake: (() => void) | undefined;
  #round: Round | undefined;
  #keys = 0;

  /** Starts the upstream work with a call of its own: its signal lasts over every round, its requests become input requests. */
  constructor(base: DownstreamCall, run: (call: DownstreamCall) => Promise<Result>) {
    const call: DownstreamCall = {
      ...base,
      signal: this.#controller.signal,
      sendNotification: (notification) => this.#notify(notification),
      sendRequest: (request, options) => this.#ask(request, options?.signal),
    };
    void Promise.resolve()
      .then(() => run(call))
      .then(
        (result): Settled => ({ ok: true, result }),
        (error: unknown): Settled => ({ ok: false, error }),
      )
      .then((settled) => {
        this.#settled = settled;
        // The work is over: nothing still waits for these answers.
        this.#closeRequests((method) => unansweredRequest(method, 'the call it belonged to has ended'));
        this.#wake?.();
      });
  }

  /** Messages about the call go to the request now serving it (progress under that request's own token). */
  attach(round: Round): void {
    this.#round = round;
  }

  detach(): void {
    this.#round = undefined;
  }

  /**
   * Waits until the work ends or asks the client something not yet asked. Requests an
   * upstream sends together arrive one event-loop turn apart; a turn's wait lets them go out
   * in one round (any later one goes in the next).
   */
  async next(): Promise<Step> {
    for (;;) {
      if (this.#settled) return { kind: 'done', settled: this.#settled };
      const fresh = [...this.#pending].filter(([, input]) => !input.asked);
      if (fresh.length > 0) {
        for (const [, input] of fresh) input.asked = true;
        return { kind: 'input', requests: Object.fromEntries(fresh.map(([key, input]) => [key, input.request])) };
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
      // Only requests wait for the others of their turn; a call that ended has none to come.
      if (!this.#settled) await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /**
   * Gives the upstream the client's answers to the requests of the last round (the caller saw
   * to it that each key asked is answered). A request the upstream withdrew meanwhile was
   * answered all the same (the client could not know); that answer goes nowhere.
   */
  answer(asked: readonly string[], responses: Record<string, unknown> | undefined): void {
    for (const key of asked) this.#pending.get(key)?.resolve(responses?.[key] as Record<string, unknown>);
  }

  /**
   * Ends the call on the client's side: each request still open is answered as a 2025 client
   * that cannot answer would (an elicitation as cancelled, anything else with an error), and
   * the upstream work is cancelled.
   */
  end(reason: string): void {
    this.#closeRequests((method) => unansweredRequest(method, reason), { action: 'cancel' });
    this.#controller.abort(reason);
  }

  /** Cancels the upstream work (the client left, the call expired, the gateway stops). */
  cancel(reason: string): void {
    this.#controller.abort(reason);
    this.#closeRequests((method) => unansweredRequest(method, reason));
  }

  /** Answers the given requests with `error` (they cannot be sent to the client); the work goes on. */
  refuse(keys: readonly string[], error: Error): void {
    for (const key of keys) this.#pending.get(key)?.reject(error);
  }

  #closeRequests(error: (method: string) => Error, elicitation?: Record<string, unknown>): void {
    for (const [, input] of [...this.#pending]) {
      if (elicitation && input.request.method === 'elicitation/create') input.resolve(elicitation);
      else input.reject(error(input.request.method));
    }
  }

  #ask(request: OutboundMessage, signal: AbortSignal | undefined): Promise<Record<string, unknown>> {
    if (this.#settled || this.#controller.signal.aborted) {
      return Promise.reject(unansweredRequest(request.method, 'the call it belongs to has ended'));
    }
    const key = `${KEY_NAMES[request.method] ?? 'input'}-${++this.#keys}`;
    return new Promise((resolve, reject) => {
      const done = () => {
        this.#pending.delete(key);
        signal?.removeEventListener('abort', withdrawn);
      };
      // The upstream withdrew its request (or gave up the call): it leaves the next round.
      const withdrawn = () => {
        done();
        reject(signal?.reason);
      };
      if (signal?.aborted) return withdrawn();
      signal?.addEventListener('abort', withdrawn, { once: true });
      const entry: PendingInput = {
        request: { method: request.method, ...(request.params ? { params: request.params } : {}) },
        asked: false,
        resolve: (answer) => {
          done();
          resolve(answer);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      this.#pending.set(key, entry);
      this.#wake?.();
    });
  }

  #notify(notification: OutboundMessage): Promise<void> {
    const round = this.#round;
    // Between rounds no request of the client is open: nobody could receive it.
    if (!round) return Promise.resolve();
    if (notification.method === 'notifications/progress') {
      if (round.progressToken === undefined) return Promise.resolve();
      return round.notify({ ...notification, params: { ...notification.params, progressToken: round.progressToken } });
    }
    return round.notify(notification);
  }
}

export interface ModernCallBridgeOptions {
  /** How long a paused call waits for the client's retry before its upstream work is cancelled. */
  ttlMs: number;
  /** Paused calls held at most (each holds an upstream request open). */
  capacity: number;
  /** Paused calls one caller (rate key) may have held at once. */
  capacityPerCaller: number;
  logger: Logger;
  /**
   * The key `requestState` is sealed with (at least 32 bytes). Random per gateway when not
   * given: only the replica holding a call checks its state (a retry elsewhere is forwarded
   * unchecked), so replicas need not share a key.
   */
  key?: Uint8Array | undefined;
  /**
   * The replicas this gateway is one of: states name `replicaId`, and a retry for a call held
   * by another replica is forwarded to it over `rpc`. Without it, states name a replica of this
   * process only, and a retry naming any other is refused as an unknown state.
   */
  replicas?: { replicaId: string; rpc: BusRpc; keepAliveMs?: number | undefined } | undefined;
}

/**
 * Serves 2026-07-28 `tools/call`, `prompts/get` and `resources/read` requests whose upstream
 * speaks 2025 and may send the client requests mid-call (sampling, elicitation, roots), which
 * a 2026 client cannot be sent. Such a request is not refused: the upstream call keeps running
 * with its request unanswered, and the client gets `input_required` with the request(s) and a
 * `requestState` the gateway sealed (HMAC, with a lifetime, bound to the caller's principal
 * and the method) naming the paused call. The client's retry verifies, takes the paused call,
 * answers the upstream with `inputResponses`, and waits again, for the result or the next
 * request (another round). A paused call not retried in time is cancelled upstream.
 *
 * A 2026 upstream's own `input_required` is the work's result like any other: it reaches the
 * client as it came, and its retry, carrying the upstream's state, starts the work afresh.
 *
 * The state names the replica holding the call; a retry landing on another replica is
 * forwarded to it (`PausedCallForwarding`) and checked there.
 */
export class ModernCallBridge {
  readonly #store: PausedCallStore<BridgedCall>;
  readonly #codec: RequestStateCodec<StatePayload>;
  readonly #logger: Logger;
  readonly #replicaId: string;
  readonly #forwarding: PausedCallForwarding | undefined;
  readonly #stopServing: () => void;

  constructor(options: ModernCallBridgeOptions) {
    this.#logger = options.logger;
    this.#replicaId = options.replicas?.replicaId ?? randomUUID();
    const seconds = options.ttlMs / 1000;
    this.#store = new InMemoryPausedCalls<BridgedCall>({
      ttlMs: options.ttlMs,
      capacity: options.capacity,
      capacityPerCaller: options.capacityPerCaller,
      onExpired: ({ record, live }) => {
        this.#logger.debug({ principal: record.principal, method: record.method, target: record.target }, 'a paused call was not resumed in time; cancelled');
        live.cancel(`the client did not answer within ${seconds}s`);
      },
    });
    this.#codec = createRequestStateCodec<StatePayload>({
      key: options.key ?? crypto.getRandomValues(new Uint8Array(32)),
      // The store decides when a call is given up; the state's own lifetime only bounds it.
      ttlSeconds: Math.ceil(seconds),
      bind: (ctx) => {
        const { method, principal } = ctx as unknown as Binding;
        return `${method}\n${principal}`;
      },
    });
    const replicas = options.replicas;
    this.#forwarding = replicas && new PausedCallForwarding({ rpc: replicas.rpc, logger: this.#logger, keepAliveMs: replicas.keepAliveMs });
    this.#stopServing = this.#forwarding?.serve((retry, channel) => this.#resumeForwarded(retry, channel)) ?? (() => {});
  }

  /** Calls paused now, waiting for their client's retry. */
  get paused(): number {
    return this.#store.size;
  }

  /**
   * Serves one request of a call: its first (starting `run` with a call whose requests to the
   * client become input requests) or a retry carrying the gateway's `requestState` (resuming
   * the paused call, here or on the replica holding it). `target` is the tool or prompt name or
   * the URI the request names; a retry must name the same; `caller` is the caller's rate key,
   * which its share of the store is counted by. Returns the work's result, or `input_required`.
   */
  async serve<T extends Result>(ctx: ServerContext, { target, caller }: { target: string; caller: string }, call: DownstreamCall, run: (call: DownstreamCall) => Promise<T>): Promise<T | InputRequiredResult> {
    const request: RoundRequest = {
      method: ctx.mcpReq.method,
      target,
      caller,
      progressToken: progressTokenOf(ctx),
      signal: ctx.mcpReq.signal,
      notify: (notification) => call.sendNotification(notification),
      principal: () => accessIn(ctx.http?.authInfo).principal.id,
    };
    const state = ctx.mcpReq.requestState();
    if (!isGatewayState(state)) return this.#first(request, call, run);
    const holder = splitState(state)?.holder;
    const responses = ctx.mcpReq.inputResponses;
    if (this.#forwarding && holder !== undefined && holder !== this.#replicaId) {
      const retry: ForwardedRetry = { state, method: request.method, target, principal: request.principal(), caller, progressToken: request.progressToken, inputResponses: responses };
      return (await this.#forwarding.forward(holder, retry, request)) as T | InputRequiredResult;
    }
    return (await this.#resume(state, responses, request)) as T | InputRequiredResult;
  }

  /**
   * Serves the first request of a call (no `requestState`, so no retry), given by its parts
   * rather than by an SDK context: what `serve` does for such a request. `request.signal`
   * aborted (the client left) cancels the call; messages about it go to `call`'s client.
   */
  start<T extends Result>(request: FirstRequest, call: DownstreamCall, run: (call: DownstreamCall) => Promise<T>): Promise<T | InputRequiredResult> {
    const { principal, ...parts } = request;
    return this.#first({ ...parts, notify: (notification) => call.sendNotification(notification), principal: () => principal }, call, run);
  }

  async #first<T extends Result>(request: RoundRequest, call: DownstreamCall, run: (call: DownstreamCall) => Promise<T>): Promise<T | InputRequiredResult> {
    // A call's work yields what `run` yields, over however many rounds: its type is `T`'s.
    return (await this.#round(new BridgedCall(call, run), request)) as T | InputRequiredResult;
  }

  /**
   * Shutdown begins: cancels every paused call (no retry can reach this replica any more) and
   * takes no more retries forwarded by other replicas. Rounds in flight both ways, forwarded
   * from here or to here, go on while the replica drains, until `close`.
   */
  stop(): void {
    this.#stopServing();
    this.#forwarding?.drain();
    for (const { live } of this.#store.stop()) live.cancel('the gateway is stopping');
  }

  /** Shutdown ends (before the replica bus closes): ends the rounds still in flight with other replicas, telling them why. */
  async close(): Promise<void> {
    await this.#forwarding?.close();
  }

  /**
   * Resumes a call paused here with a retry's answers. Refused before anything is taken: a
   * forged or foreign state (another principal's, method's, target's or replica's) leaves the
   * paused call as it was.
   */
  async #resume(state: string, responses: Record<string, unknown> | undefined, request: RoundRequest): Promise<Result | InputRequiredResult> {
    const payload = await this.#open(state, request);
    if (payload.target !== request.target || payload.replica !== this.#replicaId) throw invalidRequestState();
    const paused = this.#store.take(payload.id, request.principal());
    if (!paused) throw invalidRequestState();
    const { asked } = paused.record;
    // 2026-07-28 asks every key back; the SDK already left out answers that are not bare results.
    const missing = asked.filter((key) => !isObject(responses?.[key]));
    if (missing.length > 0) {
      paused.live.end('the client did not answer it');
      throw missingInputResponses(missing);
    }
    // Answered once this request serves the call, so that what the upstream sends next reaches it.
    return this.#round(paused.live, request, () => paused.live.answer(asked, responses));
  }

  /** A retry another replica forwarded: served as if it had arrived here, its messages going back over the bus. */
  #resumeForwarded(retry: ForwardedRetry, channel: RoundChannel): Promise<Result> {
    const { state, inputResponses, principal, ...fields } = retry;
    return this.#resume(state, inputResponses, { ...fields, progressToken: fields.progressToken, signal: channel.signal, notify: channel.notify, principal: () => principal });
  }

  /** One request's share of the call: the result, or the next `input_required` round. */
  async #round(bridged: BridgedCall, request: RoundRequest, resume?: () => void): Promise<Result | InputRequiredResult> {
    // The client going away (or cancelling) during a round ends the call: nothing would resume it.
    const leave = () => bridged.cancel('the client cancelled the request or went away');
    const { signal, target, caller } = request;
    if (signal.aborted) leave();
    signal.addEventListener('abort', leave, { once: true });
    bridged.attach(request);
    try {
      resume?.();
      for (;;) {
        const step = await bridged.next();
        if (step.kind === 'done') {
          if (step.settled.ok) return step.settled.result;
          throw step.settled.error;
        }
        const asked = Object.keys(step.requests);
        const id = randomUUID();
        const sealed = await this.#codec.mint({ id, target, replica: this.#replicaId }, bindingOf(request));
        const requestState = `${STATE_PREFIX}${sealed}.${this.#replicaId}`;
        // The client left while the state was sealed: `leave` cancelled the call, and a held
        // copy would only wait out its time for a retry that cannot come.
        if (signal.aborted) throw signal.reason;
        const held: PausedCall<BridgedCall> = { record: { id, principal: request.principal(), caller, method: request.method, target, asked }, live: bridged };
        const outcome = this.#store.put(held);
        if (outcome !== 'held') {
          bridged.refuse(asked, outcome === 'full' ? tooManyPausedCalls() : tooManyPausedCallsOfCaller());
          continue;
        }
        return { resultType: 'input_required', inputRequests: step.requests, requestState } as InputRequiredResult;
      }
    } finally {
      signal.removeEventListener('abort', leave);
      bridged.detach();
    }
  }

  /** The payload of a state this replica sealed, for this request's method and principal. */
  async #open(state: string, request: RoundRequest): Promise<StatePayload> {
    const parts = splitState(state);
    // Another replica's state reaches here only when it cannot be forwarded (no replicas given).
    if (!parts || parts.holder !== this.#replicaId) throw invalidRequestState();
    try {
      return await this.#codec.verify(parts.sealed, bindingOf(request));
    } catch (error) {
      // The codec's reason (mac, expired, bind, malformed) is for the operator only.
      this.#logger.debug({ reason: error instanceof Error ? error.message : String(error) }, 'a retry carried a requestState that does not verify');
      throw invalidRequestState();
    }
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function progressTokenOf(ctx: ServerContext): string | number | undefined {
  const token = (ctx.mcpReq._meta as { progressToken?: unknown } | undefined)?.progressToken;
  return typeof token === 'string' || typeof token === 'number' ? token : undefined;
}
