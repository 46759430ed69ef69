import { ProtocolError } from '@modelcontextprotocol/client';
import type { Access } from '../auth/access-policy.js';
import type { Logger } from 'pino';
import { UpstreamUnavailableError } from '../upstream/errors.js';
import type { RateLimits } from '../limits/rate-limits.js';
import { inSpan } from '../observability/tracing.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import type { UpstreamRequestOptions } from '../upstream/upstream-connection.js';
import type { CallTracker } from './call-tracker.js';
import type { DownstreamCall } from './downstream-call.js';
import { asMcpError } from './error-mapping.js';
import { bestEffort } from '../observability/best-effort.js';

export interface ForwardDeps {
  upstreams: UpstreamPool;
  tracker: CallTracker;
  /** Each server's call budget; with limits off, one whose settings let every call through. */
  rateLimits: RateLimits;
  logger: Logger;
}

/**
 * Sends one downstream request on to `server` and returns the upstream's result as it came.
 * While it is in flight, the upstream's own requests and logs are attributed to `call`;
 * progress travels back under the client's own token; the client's cancellation (or its
 * session ending) cancels the upstream request. An upstream's JSON-RPC error is rethrown with
 * its code and data, its message without the `MCP error <code>: ` prefixes an SDK 1.x
 * upstream adds (see `WireMcpError`), so that no surface quoting it shows them twice. A 2026
 * upstream's `input_required` comes back as it is, and a retry's `inputResponses` and
 * `requestState` in `params` go on untouched. `extra.tasks` lets the upstream answer with a task
 * handle (the caller declared the Tasks extension). Such an upstream is told the client's own
 * capabilities (those the gateway can relay), so that it asks only for what the client can give.
 * A server that acts for each user gets the request on the caller's own instance, started
 * first when the caller has none; a user who must authorise it first gets its
 * `UpstreamAuthError` as it is.
 */
export async function forward(
  deps: ForwardDeps,
  server: string,
  method: string,
  params: Record<string, unknown> | undefined,
  call: DownstreamCall,
  extra: Pick<UpstreamRequestOptions, 'tasks'> = {},
): Promise<Record<string, unknown>> {
  if (!deps.upstreams.get(server)) throw new UpstreamUnavailableError(server, 'it is not configured');
  await deps.rateLimits.server(server);
  // A shared server's connection, or (a server that acts for each user) the caller's own
  // instance; a caller who cancels stops waiting for one that is starting.
  const upstream = await deps.upstreams.forCaller(server, { principal: call.access.principal }, call.signal);
  // Notifications about this call (progress, logs) must reach the client before its answer:
  // sending one is asynchronous, so the answer waits for those already under way.
  const pending: Promise<unknown>[] = [];
  const tracked: DownstreamCall = {
    ...call,
    sendNotification: (notification) => {
      // A client that went away cannot take it; the call itself still ends normally.
      const sent = bestEffort(() => call.sendNotification(notification), deps.logger, `relay ${notification.method} to the client`);
      pending.push(sent);
      return sent;
    },
  };
  // A 2026 upstream reads what the client can be asked for, and the level it wants logs at, in the request itself.
  const options: UpstreamRequestOptions = { ...extra, signal: call.signal, clientCapabilities: call.clientCapabilities ?? {}, logLevel: call.logLevel };
  const progressToken = (params?._meta as { progressToken?: string | number } | undefined)?.progressToken;
  if (progressToken !== undefined) {
    options.resetTimeoutOnProgress = true;
    options.onprogress = (progress) => void tracked.sendNotification({ method: 'notifications/progress', params: { ...progress, progressToken } });
  }
  const end = deps.tracker.begin(server, tracked);
  try {
    const result = await inSpan(`upstream ${method}`, 'client', { 'mcp.server': server, 'mcp.method': method }, () => upstream.request(method, params, options, tracked));
    await Promise.all(pending);
    return result;
  } catch (error) {
    // An error answer, too, comes after the notifications sent before it.
    await Promise.all(pending);
    throw error instanceof ProtocolError ? asMcpError(error, deps.logger) : error;
  } finally {
    end();
  }
}

/** A call with no MCP client behind it (CLI, REST): nothing can be relayed back. */
export function detachedCall(channel: DownstreamCall['channel'], access: Access, signal: AbortSignal = new AbortController().signal): DownstreamCall {
  return {
    principal: access.principal.id,
    access,
    channel,
    sessionId: undefined,
    clientCapabilities: undefined,
    signal,
    sendNotification: async () => {},
    sendRequest: async () => {
      throw new Error('no client to ask');
    },
  };
}
