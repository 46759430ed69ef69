import { CLIENT_CAPABILITIES_META_KEY, LOG_LEVEL_META_KEY, type ClientCapabilities, type LoggingLevel, type Progress, type Tool } from '@modelcontextprotocol/client';
import { withoutHopMeta } from './hop-meta.js';
import { taskIdForProcess, taskIdFromProcess } from './minted-values.js';
import { paramHeaders } from './param-headers.js';
import { declaringTasks, withTaskHandle } from './task-results.js';
import { CLIENT_CAPABILITIES } from './upstream-client.js';

/** Conflux's own request options (no SDK type crosses this boundary). */
export interface UpstreamRequestOptions {
  signal?: AbortSignal | undefined;
  /** Milliseconds; the server's configured timeout when not given. */
  timeout?: number | undefined;
  /** Progress the upstream reports about this request. */
  onprogress?: ((progress: Progress) => void) | undefined;
  /** Whether a progress report restarts the timeout. */
  resetTimeoutOnProgress?: boolean | undefined;
  /** The caller declared the Tasks extension: a 2026-07-28 upstream is told so, and may answer with a task handle. */
  tasks?: boolean | undefined;
  /**
   * What the client this request is made for declared it can be asked: a 2026-07-28 upstream
   * reads it in the request's envelope (those the gateway can relay), and asks only for that.
   * Without it the envelope names what the gateway itself answers.
   */
  clientCapabilities?: ClientCapabilities | undefined;
  /**
   * The least severe log message the client wants about this request: a 2026-07-28 upstream logs
   * about a request only at the level the request names (none when it names none).
   */
  logLevel?: LoggingLevel | undefined;
}

/** The upstream session a request goes out on, as far as what it is sent as depends on it. */
export interface EnvelopeSession {
  server: string;
  /** It speaks 2026-07-28. */
  modern: boolean;
  /** A stdio session's child process (`minted-values.ts`). */
  processKey: string | undefined;
  /** The tools as this upstream lists them (their input schemas name the `Mcp-Param-*` headers). */
  tools: readonly Tool[];
}

/**
 * What a request is sent as. Reserved `_meta` keys belong to one hop and are taken out; a
 * stdio session's task ids lose their process tag (a task lives in the process that created
 * it: one naming another's throws, and is not sent). A 2026-07-28 request's envelope names the
 * calling client's capabilities (those the gateway can relay), the Tasks extension when the
 * caller declared it, and the caller's log level; a `tools/call` carries the `Mcp-Param-*`
 * headers its tool declares (a value too long for a header throws).
 */
export function outgoingRequest(
  method: string,
  params: Record<string, unknown> | undefined,
  options: UpstreamRequestOptions,
  session: EnvelopeSession,
): { params: Record<string, unknown> | undefined; headers: Record<string, string> | undefined } {
  const { modern, processKey } = session;
  const forwarded = withoutHopMeta(processKey ? taskIdForProcess(session.server, processKey, method, params) : params);
  const capabilities = options.clientCapabilities ? relayableCapabilities(options.clientCapabilities) : CLIENT_CAPABILITIES;
  const sent = !modern ? forwarded : options.tasks ? declaringTasks(forwarded, capabilities) : options.clientCapabilities ? withCapabilities(forwarded, capabilities) : forwarded;
  // The client's own level was taken out with the hop's envelope: the caller's goes in its place.
  const logged = modern && options.logLevel ? withLogLevel(sent, options.logLevel) : sent;
  const headers = modern && method === 'tools/call' ? paramHeadersFor(session.tools, logged) : undefined;
  return { params: logged, headers };
}

/** What the caller gets of an upstream's answer: a task handle as the upstream sent it, without the hop's `_meta`, task ids tagged with their process. */
export function incomingResult<T extends Record<string, unknown>>(method: string, result: T, session: Pick<EnvelopeSession, 'modern' | 'processKey'>): T {
  const answered = withoutHopMeta(session.modern ? withTaskHandle(result) : result);
  return session.processKey ? taskIdFromProcess(session.processKey, method, answered) : answered;
}

/** The SDK's options for a request: the caller's, and nothing of them the SDK would read differently. */
export function sdkRequestOptions(
  options: UpstreamRequestOptions,
  timeout: number,
  headers: Record<string, string> | undefined,
): { signal?: AbortSignal; onprogress?: (progress: Progress) => void; resetTimeoutOnProgress?: boolean; timeout: number; allowInputRequired: true; headers?: Record<string, string> } {
  return {
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onprogress ? { onprogress: options.onprogress } : {}),
    ...(options.resetTimeoutOnProgress !== undefined ? { resetTimeoutOnProgress: options.resetTimeoutOnProgress } : {}),
    timeout,
    allowInputRequired: true,
    ...(headers ? { headers } : {}),
  };
}

/** The `Mcp-Param-*` headers a `tools/call` needs, from the tool's input schema as this upstream lists it. */
function paramHeadersFor(tools: readonly Tool[], params: Record<string, unknown> | undefined): Record<string, string> | undefined {
  const tool = tools.find((t) => t.name === params?.name);
  const headers = tool ? paramHeaders(tool.inputSchema, params?.arguments as Record<string, unknown> | undefined) : {};
  return Object.keys(headers).length > 0 ? headers : undefined;
}

/**
 * Of what a client declared, what the gateway can relay to it: sampling, elicitation and
 * roots, as declared (less roots' `listChanged`: no `roots/list_changed` is relayed).
 */
function relayableCapabilities(declared: ClientCapabilities): ClientCapabilities {
  return {
    ...(declared.sampling ? { sampling: declared.sampling } : {}),
    ...(declared.elicitation ? { elicitation: declared.elicitation } : {}),
    ...(declared.roots ? { roots: {} } : {}),
  };
}

/** `params` whose envelope names `capabilities` (the SDK client lets `_meta` keys given with a request win over those it attaches). */
function withCapabilities(params: Record<string, unknown> | undefined, capabilities: ClientCapabilities): Record<string, unknown> {
  const meta = params?._meta as Record<string, unknown> | undefined;
  return { ...params, _meta: { ...meta, [CLIENT_CAPABILITIES_META_KEY]: capabilities } };
}

/** `params` whose envelope asks for log messages from `level` up. */
function withLogLevel(params: Record<string, unknown> | undefined, level: LoggingLevel): Record<string, unknown> {
  const meta = params?._meta as Record<string, unknown> | undefined;
  return { ...params, _meta: { ...meta, [LOG_LEVEL_META_KEY]: level } };
}
