import { Client, SdkError, SdkErrorCode, SdkHttpError, SSEClientTransport, type PriorDiscovery, type Transport } from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import { isReplicated, type HttpServerConfig, type ServerConfig } from '../config/schema.js';
import type { ChildProcessGroups } from './child-processes.js';
import { HttpClientTransport } from './http-client-transport.js';
import { StdioClientTransport } from './stdio-transport.js';
import type { OwnerChannel } from './owner-channel.js';
import { bestEffort } from '../observability/best-effort.js';
import { authFailureIn, describeConnectFailure, describeError } from './failure-classification.js';
import { UpstreamConnectError } from './errors.js';
import type { UpstreamAuth } from './auth/upstream-auth.js';
import { authorizedFetch } from './auth/authorized-fetch.js';
import { nextVerdict, noCommonVersion, offeredVersions, type NegotiatedProtocol } from './era-negotiation.js';

type Wire = 'stdio' | 'streamable-http' | 'sse';

export interface OpenedClient {
  client: Client;
  transport: Transport;
  /** The wire actually in use (a `streamable-http` server may have been reached over SSE). */
  wire: Wire;
  protocol: NegotiatedProtocol;
  /** The era verdict this connection proves, to remember for the next connect. */
  verdict: PriorDiscovery;
  /** Whether `verdict` is news: found out by probing, not the remembered one that was given. */
  learned: boolean;
}

export interface OpenOptions {
  config: ServerConfig;
  logger: Logger;
  groups: ChildProcessGroups;
  newClient: () => Client;
  timeoutMs: number;
  /** The remembered era verdict: connect without probing. */
  prior?: PriorDiscovery | undefined;
  /** Called when the remembered verdict proved wrong and was set aside for a fresh probe. */
  onStaleVerdict?: (() => void) | undefined;
  /** Carries a request's owner to the messages on its response stream (Streamable HTTP). */
  owners?: OwnerChannel;
  /** Credentials for every HTTP request (Streamable HTTP and legacy SSE alike). */
  auth?: UpstreamAuth | undefined;
  /** Hides secrets in what is logged about failed attempts and a child's stderr (they may quote the upstream, or its environment). */
  redact?: ((text: string) => string) | undefined;
  /** Gives the attempt up: its transport is closed at once (a stdio child stopped), and no other is opened. */
  signal?: AbortSignal | undefined;
}

/** Attempts per wire: the remembered verdict, a fresh probe, then a plain legacy handshake. */
const MAX_NEGOTIATION_ATTEMPTS = 3;

/**
 * Connects an SDK client to one upstream over its configured wire and settles its protocol
 * era: a remembered verdict is used as it is (no probe), otherwise the client probes with
 * `server/discover` and falls back to `initialize`. A `streamable-http` server that refuses the
 * Streamable HTTP handshake is tried again over legacy SSE at the same URL, as the MCP
 * specification's backwards-compatibility section describes. A server that shares no protocol
 * version with Conflux fails with `NoCommonVersionError`; any other HTTP upstream that cannot be
 * reached with an `UpstreamConnectError` that names its URL and the cause in words.
 */
export async function openClient(options: OpenOptions): Promise<OpenedClient> {
  try {
    return await openOnWire(options);
  } catch (error) {
    throw noCommonVersion(error) ?? worded(error, options) ?? error;
  }
}

/**
 * An HTTP upstream's failure worded for a person (see `describeConnectFailure`). Not a failure
 * to get credentials, whose own message says more, nor an attempt given up.
 */
function worded(error: unknown, { config, auth, timeoutMs, signal }: OpenOptions): UpstreamConnectError | undefined {
  if (config.transport === 'stdio' || isReplicated(config) || signal?.aborted || authFailureIn(error)) return undefined;
  const credentials = Object.keys(config.headers).length > 0 || auth !== undefined;
  return new UpstreamConnectError(describeConnectFailure(error, { url: config.url, wire: config.transport, credentials, timeoutMs }), { cause: error });
}

async function openOnWire(options: OpenOptions): Promise<OpenedClient> {
  const { config } = options;
  if (config.transport === 'stdio') {
    return negotiate('stdio', options, () => {
      const transport = new StdioClientTransport({
        command: config.command,
        args: config.args,
        env: config.env,
        cwd: config.cwd,
        logger: options.logger,
        groups: options.groups,
        redact: options.redact,
      });
      return { transport, explainFailure: (error: unknown) => explainStdioFailure(transport, error) };
    });
  }
  // A server with `urls` is opened replica by replica, each with its own `url` (see replicated-server.ts).
  if (isReplicated(config)) throw new Error('a server with urls is opened one replica at a time');
  if (config.transport === 'sse') return connectSse(config, options);
  try {
    return await negotiate('streamable-http', options, () => ({ transport: new HttpClientTransport(new URL(config.url), { headers: config.headers, owners: options.owners, auth: options.auth, connectTimeoutMs: options.timeoutMs }) }));
  } catch (error) {
    if (!worthTryingSse(error)) throw error;
    options.logger.info({ reason: redacted(options, describeError(error)) }, 'Streamable HTTP refused; trying legacy SSE');
    try {
      return await connectSse(config, options);
    } catch {
      throw error; // the Streamable HTTP failure is the one the user needs to see
    }
  }
}

/**
 * Connects with the remembered verdict, and when the failure says the verdict (or the probe)
 * was wrong, once more with the next one (see `nextVerdict`), each time on a fresh client and
 * transport (a stdio child that died of the probe cannot be reused).
 */
async function negotiate(
  wire: Wire,
  options: OpenOptions,
  open: () => { transport: Transport; explainFailure?: (error: unknown) => string | undefined },
): Promise<OpenedClient> {
  let prior = options.prior;
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    const { transport, explainFailure } = open();
    const client = options.newClient();
    // Given up mid-handshake (the connection was stopped): the transport closes now, which ends the handshake.
    let closing: Promise<void> | undefined;
    const giveUp = () => void (closing = bestEffort(() => transport.close(), options.logger, 'close the transport of an attempt given up'));
    options.signal?.addEventListener('abort', giveUp, { once: true });
    try {
      await connect(client, transport, prior, options, explainFailure);
      options.signal?.throwIfAborted();
      return opened(client, transport, wire, prior !== options.prior || prior === undefined);
    } catch (error) {
      // Given up: the attempt ends once its transport has closed (a stdio child has exited), so that a stopped connection leaves none behind.
      await closing;
      options.signal?.throwIfAborted();
      // Credentials that cannot be had stay so whatever the era: no second probe.
      const next = attempt < MAX_NEGOTIATION_ATTEMPTS && !authFailureIn(error) ? nextVerdict(error, prior, wire) : undefined;
      if (!next) throw error;
      if (prior !== undefined) options.onStaleVerdict?.();
      options.logger.info({ reason: redacted(options, describeError(error)), prior: prior?.kind ?? 'none', next: next.prior?.kind ?? 'probe' }, 'upstream protocol era not settled; connecting again');
      prior = next.prior;
    } finally {
      options.signal?.removeEventListener('abort', giveUp);
    }
  }
}

/**
 * Legacy SSE is a 2024 wire: whatever listens there speaks the 2025 era, so there is nothing to
 * probe. Credentials go through the transport's fetch hooks (the stream's GET and each POST),
 * not its `authProvider`, which knows only bearer tokens: an API key header or a query
 * parameter must reach the upstream too.
 */
async function connectSse(config: HttpServerConfig, options: OpenOptions): Promise<OpenedClient> {
  const client = options.newClient();
  const send = options.auth ? authorizedFetch(options.auth, fetch) : fetch;
  let streamAnswered = false;
  const transport = new SSEClientTransport(new URL(config.url), {
    requestInit: { headers: config.headers },
    ...(options.auth ? { fetch: send } : {}),
    eventSourceInit: {
      fetch: async (url, init) => {
        const response = await send(url, { ...init, headers: { ...config.headers, ...headerRecord(init?.headers) } });
        streamAnswered = true;
        return response;
      },
    },
  });
  limitEndpointWait(transport, options.timeoutMs, () => streamAnswered);
  await connect(client, transport, { kind: 'legacy' }, options);
  return opened(client, transport, 'sse', options.prior?.kind !== 'legacy');
}

/**
 * Bounds the SSE transport's start, which waits for the server's `endpoint` event and which no
 * request timeout covers: a server that accepts the stream and says nothing would hold the
 * attempt for ever. Only that wait: the initialize sent once the endpoint is known has the
 * connect timeout of its own, so a slow initialize after a prompt endpoint event is not cut short
 * by this deadline, nor reported as a missing endpoint event. Past the deadline, the start fails
 * as a timeout when the server has not even answered the stream's GET, and as a missing endpoint
 * event when it has.
 */
function limitEndpointWait(transport: SSEClientTransport, timeoutMs: number, streamAnswered: () => boolean): void {
  const start = transport.start.bind(transport);
  transport.start = async () => {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          streamAnswered()
            ? new Error(`the SSE stream sent no endpoint event within ${timeoutMs / 1000}s`)
            : new SdkError(SdkErrorCode.RequestTimeout, `no answer to the SSE stream's request within ${timeoutMs}ms`),
        );
      }, timeoutMs);
    });
    try {
      // The caller closes the transport of a failed start (see `connect`), which ends the stream's wait.
      await Promise.race([start(), deadline]);
    } finally {
      clearTimeout(timer);
    }
  };
}

async function connect(
  client: Client,
  transport: Transport,
  prior: PriorDiscovery | undefined,
  { timeoutMs, logger }: Pick<OpenOptions, 'timeoutMs' | 'logger'>,
  explainFailure?: (error: unknown) => string | undefined,
): Promise<void> {
  try {
    await client.connect(transport, { timeout: timeoutMs, ...(prior ? { prior } : {}) });
    answersAfterNotifications(transport);
  } catch (error) {
    await bestEffort(() => client.close(), logger, 'close the client of a failed connection attempt');
    // A failed negotiation has already closed the transport, a failed handshake may not have.
    await bestEffort(() => transport.close(), logger, 'close the transport of a failed connection attempt');
    const explained = explainFailure?.(error);
    // The explanation says all the SDK error did, in words a reader needs.
    // eslint-disable-next-line preserve-caught-error
    if (explained) throw new Error(explained);
    throw error;
  }
}

/**
 * Delivers each response to the SDK one microtask late. The SDK runs notification handlers in a
 * microtask but settles a response at once, dropping the request's progress handler: a progress
 * notification read in the same chunk as the result it precedes (common on stdio) would find no
 * handler, and the client would never see its last progress. Deferred, the response is settled
 * after every notification that came before it on the wire.
 */
function answersAfterNotifications(transport: Transport): void {
  const deliver = transport.onmessage;
  if (!deliver) return;
  transport.onmessage = (message, extra) => {
    if ('id' in message && !('method' in message)) queueMicrotask(() => deliver.call(transport, message, extra));
    else deliver.call(transport, message, extra);
  };
}

function opened(client: Client, transport: Transport, wire: Wire, learned: boolean): OpenedClient {
  const discover = client.getDiscoverResult();
  const version = client.getNegotiatedProtocolVersion() ?? 'unknown';
  const modern = client.getProtocolEra() === 'modern' && discover !== undefined;
  return {
    client,
    transport,
    wire,
    protocol: { era: modern ? 'modern' : 'legacy', version },
    verdict: modern ? { kind: 'modern', discover } : { kind: 'legacy' },
    learned,
  };
}

/**
 * Why a stdio handshake failed, when the transport knows better than the SDK: the child's exit
 * (with its telling stderr line) for a closed connection, led by the non-protocol text it wrote on
 * stdout when it wrote some, since that is what breaks the framing of stdio (a response glued to a
 * log line is lost). Only a closed connection or a timeout is explained: a failed era
 * negotiation must stay as it is, to be retried.
 */
function explainStdioFailure(transport: StdioClientTransport, error: unknown): string | undefined {
  const closed = error instanceof SdkError && error.code === SdkErrorCode.ConnectionClosed;
  const timedOut = error instanceof SdkError && error.code === SdkErrorCode.RequestTimeout;
  if (!closed && !timedOut) return undefined;
  const exit = closed ? transport.describeExit() : undefined;
  const stray = transport.describeStrayOutput();
  if (!stray) return exit;
  return `${stray} (then: ${exit ?? describeError(error)})`;
}

function redacted(options: Pick<OpenOptions, 'redact'>, text: string): string {
  return options.redact ? options.redact(text) : text;
}

function headerRecord(headers: RequestInit['headers']): Record<string, string> {
  return Object.fromEntries(new Headers(headers).entries());
}

/** A 4xx to the Streamable HTTP handshake, other than an auth wall or a version refusal (an MCP server answered). */
function worthTryingSse(error: unknown): boolean {
  if (!(error instanceof SdkHttpError) || offeredVersions(error) !== undefined) return false;
  const status = error.data.status;
  return status >= 400 && status < 500 && status !== 401 && status !== 403;
}
