import { ProtocolError, ProtocolErrorCode, SdkError, SdkErrorCode, SdkHttpError, SUPPORTED_PROTOCOL_VERSIONS, type PriorDiscovery } from '@modelcontextprotocol/client';
import { NoCommonVersionError, NotJsonRpcError } from './errors.js';

/**
 * How long a stdio server may take to answer the probe. There silence means a 2025 server
 * (some never answer a method they do not know before `initialize`), and the client then
 * initializes on the same pipe; waiting the whole connect timeout would hold up every start.
 */
export const STDIO_PROBE_TIMEOUT_MS = 3000;

/** The 2026 revision: no `initialize`, a `server/discover` advertisement and a `_meta` envelope per request. */
export const MODERN_PROTOCOL_VERSION = '2026-07-28';

/**
 * Every protocol version Conflux speaks to upstreams, newest first. Passed to the SDK client
 * explicitly, so the versions named in a "no version in common" message are the ones it offers.
 */
export const SPOKEN_PROTOCOL_VERSIONS: readonly string[] = [MODERN_PROTOCOL_VERSION, ...SUPPORTED_PROTOCOL_VERSIONS];

export type ProtocolEra = 'modern' | 'legacy';

/** What an upstream connection negotiated, as `status()` shows it. */
export interface NegotiatedProtocol {
  era: ProtocolEra;
  version: string;
}

/** The wire an upstream is reached over; stdio children are probed in place and may die of it. */
type Wire = 'stdio' | 'streamable-http' | 'sse';

/**
 * After a failed connect with `prior`, the verdict to try once more with, or undefined when
 * the failure is not about the era (it is reported as it is):
 * - a remembered modern verdict the client cannot use (`EraNegotiationFailed`): probe afresh;
 * - a remembered legacy verdict refused with a version Conflux speaks (the server was
 *   upgraded and now refuses `initialize`): probe afresh;
 * - a stdio child that died or broke off on the probe (servers that exit on any request
 *   before `initialize` do), or a server that answered the probe with something that is not
 *   JSON-RPC (a 2025 server's answer to a method it does not know can be anything): it is a
 *   legacy server; connect afresh (a new child) straight into `initialize`.
 * Each step moves towards the plain legacy handshake, and callers bound the attempts, so a
 * server cannot make the negotiation loop.
 */
export function nextVerdict(error: unknown, prior: PriorDiscovery | undefined, wire: Wire): { prior: PriorDiscovery | undefined } | undefined {
  if (prior?.kind === 'modern') return isEraNegotiationFailure(error) ? { prior: undefined } : undefined;
  if (prior?.kind === 'legacy') {
    const offered = offeredVersions(error);
    return offered?.some((version) => version >= MODERN_PROTOCOL_VERSION && SPOKEN_PROTOCOL_VERSIONS.includes(version)) ? { prior: undefined } : undefined;
  }
  if (isEraNegotiationFailure(error) && (wire === 'stdio' || (error as Error).cause instanceof NotJsonRpcError)) return { prior: { kind: 'legacy' } };
  return undefined;
}

export function isEraNegotiationFailure(error: unknown): boolean {
  return error instanceof SdkError && error.code === SdkErrorCode.EraNegotiationFailed;
}

/**
 * The failure as a `NoCommonVersionError` when the server said which versions it supports and
 * none of them is one Conflux speaks; undefined for any other failure.
 */
export function noCommonVersion(error: unknown): NoCommonVersionError | undefined {
  const offered = offeredVersions(error);
  if (!offered || offered.some((version) => SPOKEN_PROTOCOL_VERSIONS.includes(version))) return undefined;
  return new NoCommonVersionError(offered, SPOKEN_PROTOCOL_VERSIONS);
}

/**
 * The versions a server said it supports when it refused ours: the data of an
 * `UnsupportedProtocolVersion` (-32022) error, in-band or as the body of an HTTP refusal, or
 * the one version an `initialize` answer insisted on.
 */
export function offeredVersions(error: unknown): string[] | undefined {
  if (error instanceof ProtocolError && error.code === ProtocolErrorCode.UnsupportedProtocolVersion) return supportedList(error.data);
  if (error instanceof SdkHttpError) {
    const body = parseJsonRpcError(error.data.text);
    if (body?.code === ProtocolErrorCode.UnsupportedProtocolVersion) return supportedList(body.data);
    return undefined;
  }
  const insisted = error instanceof Error ? /^Server's protocol version is not supported: (.+)$/.exec(error.message) : null;
  return insisted ? [insisted[1]!] : undefined;
}

function supportedList(data: unknown): string[] | undefined {
  const supported = (data as { supported?: unknown } | undefined)?.supported;
  return Array.isArray(supported) && supported.every((v) => typeof v === 'string') ? supported : undefined;
}

function parseJsonRpcError(text: unknown): { code: number; data?: unknown } | undefined {
  if (typeof text !== 'string' || text === '') return undefined;
  try {
    const error = (JSON.parse(text) as { error?: { code?: unknown; data?: unknown } }).error;
    return typeof error?.code === 'number' ? { code: error.code, data: error.data } : undefined;
  } catch {
    return undefined;
  }
}
