import { ProtocolError, type Prompt, type Resource, type ResourceTemplateType, type ServerCapabilities, type Tool } from '@modelcontextprotocol/client';
import { ClientCapabilitiesSchema, LoggingLevelSchema, LoggingMessageNotificationParamsSchema, ProgressSchema } from '@modelcontextprotocol/core';
import { z } from 'zod';
import { RemoteCallError, ReplicaUnreachableError } from '../state/bus-rpc.js';
import { SharedStateUnavailableError } from '../state/shared-state.js';
import { UpstreamBadResponseError, UpstreamConnectionLostError, UpstreamTimeoutError, UpstreamUnavailableError } from '../upstream/errors.js';
import type { OwnerView } from '../upstream/single-owner-server.js';
import type { UpstreamState } from '../upstream/upstream-connection.js';

/**
 * What the gateway processes of a `processes: one` server say to each other over the replica
 * bus (`owner-requests.ts`), and how an error that crossed it becomes the error it was.
 */
export const TOPICS = {
  /** Caller → holder: a request for the process (rpc), its cancellation (event). */
  request: 'stdio-one:request',
  cancel: 'stdio-one:cancel',
  /** Holder → caller, about one request: its progress, a log message about it (events), a request for its client (rpc) and that one's cancellation (event). */
  progress: 'stdio-one:progress',
  notify: 'stdio-one:notify',
  ask: 'stdio-one:ask',
  askCancel: 'stdio-one:ask-cancel',
  /** How the server looks on its holder: asked (rpc) or told to all (event). */
  view: 'stdio-one:view',
  views: 'stdio-one:views',
  /** The holder let go of the lease (event); a restart of the process (rpc). */
  released: 'stdio-one:released',
  restart: 'stdio-one:restart',
  /** What the process said about no call (events to all). */
  log: 'stdio-one:log',
  resourceUpdated: 'stdio-one:resource-updated',
} as const;

const Params = z.record(z.string(), z.unknown());

/** Who a request is made for: what the holder's stand-in for the call needs (its rights are judged where the call is). */
export const CallIdentitySchema = z.object({
  principal: z.string(),
  channel: z.enum(['mcp', 'rest', 'cli']),
  sessionId: z.string().optional(),
  requestId: z.union([z.string(), z.number()]).optional(),
  clientCapabilities: ClientCapabilitiesSchema.optional(),
  logLevel: LoggingLevelSchema.optional(),
});
export type CallIdentity = z.infer<typeof CallIdentitySchema>;

export const RequestSchema = z.object({
  id: z.string(),
  server: z.string(),
  method: z.string(),
  params: Params.optional(),
  options: z.object({
    timeout: z.number().positive(),
    resetTimeoutOnProgress: z.boolean().optional(),
    tasks: z.boolean().optional(),
    clientCapabilities: ClientCapabilitiesSchema.optional(),
    logLevel: LoggingLevelSchema.optional(),
    /** The caller wants the request's progress. */
    progress: z.boolean().optional(),
  }),
  call: CallIdentitySchema.optional(),
});
export type RequestPayload = z.infer<typeof RequestSchema>;

export const ResultSchema = Params;
export const CancelSchema = z.object({ id: z.string(), reason: z.string() });
export const ProgressEventSchema = z.object({ id: z.string(), progress: ProgressSchema });
export const NotifySchema = z.object({
  id: z.string(),
  notification: z.object({ method: z.literal('notifications/message'), params: LoggingMessageNotificationParamsSchema }),
});
export const AskSchema = z.object({
  id: z.string(),
  ask: z.string(),
  request: z.object({ method: z.string(), params: Params.optional() }),
  timeout: z.number().positive().optional(),
});
export const AskCancelSchema = z.object({ id: z.string(), ask: z.string() });
export const ServerNameSchema = z.object({ server: z.string() });
export const LogEventSchema = z.object({ server: z.string(), params: LoggingMessageNotificationParamsSchema });
export const ResourceUpdatedSchema = z.object({ server: z.string(), uri: z.string() });

const STATES = ['connecting', 'ready', 'degraded', 'down', 'misconfigured', 'disabled'] as const satisfies readonly UpstreamState[];
const Named = z.object({ name: z.string() }).loose();
const Listed = z.object({ uri: z.string() }).loose();

/**
 * A view as the holder sent it. Its lists were validated by the holder's SDK client when the
 * process listed them: their shape is checked here, not every field again.
 */
export const OwnerViewSchema = z.object({
  epoch: z.string(),
  sequence: z.number(),
  state: z.enum(STATES),
  tools: z.array(Named),
  prompts: z.array(Named),
  resources: z.array(Listed),
  resourceTemplates: z.array(z.object({ uriTemplate: z.string() }).loose()),
  capabilities: z.record(z.string(), z.unknown()).optional(),
  instructions: z.string().optional(),
  status: z.object({ name: z.string(), state: z.enum(STATES) }).loose(),
});

export const ViewEventSchema = z.object({ server: z.string(), view: OwnerViewSchema });

/** A checked view, typed as the upstream module reads it. */
export function asView(view: z.infer<typeof OwnerViewSchema>): OwnerView {
  return {
    ...view,
    tools: view.tools as unknown as Tool[],
    prompts: view.prompts as unknown as Prompt[],
    resources: view.resources as unknown as Resource[],
    resourceTemplates: view.resourceTemplates as unknown as ResourceTemplateType[],
    capabilities: view.capabilities as ServerCapabilities | undefined,
    status: view.status as unknown as OwnerView['status'],
  };
}

/**
 * A failure that crossed the bus, as the error it was on the holder: the upstream's JSON-RPC
 * errors with their code, message and data, the typed upstream faults with their message; a
 * holder that could not be reached is a lost connection (or, the bus being down, an unavailable
 * server). Anything else (the request cut short on the holder, or broken there) is a lost
 * connection too: the caller cannot know whether the request ran, and a client reads that
 * rather than an incident of this replica's.
 */
export function localError(error: unknown, server: string, method: string): unknown {
  if (error instanceof ReplicaUnreachableError) return new UpstreamConnectionLostError(server, method, `the gateway process running it did not answer (${error.message})`);
  if (error instanceof SharedStateUnavailableError) return new UpstreamUnavailableError(server, `the gateway process running it cannot be reached: ${error.message}`);
  if (!(error instanceof RemoteCallError)) return error;
  const { name, message, code, data } = error.remote;
  if (code !== undefined) return ProtocolError.fromError(code, message, data);
  const restored = restore(name, server, method);
  if (!restored) return new UpstreamConnectionLostError(server, method, `the gateway process running it ${lostThere(name, message)}`);
  restored.message = message;
  return restored;
}

/**
 * An unexpected failure of a request on the holder, logged there under its incident id, which
 * is all its message says (the failure's own text may quote internals: a driver's error, a path).
 */
export class HolderIncidentError extends Error {
  override readonly name = 'HolderIncidentError';
}

/** What happened to a request on the holder, as an untyped failure that crossed the bus tells it. */
function lostThere(name: string, message: string): string {
  // An aborted signal's reason, which the gateway writes for the reader (the gateway is stopping).
  if (name === 'AbortError') return `stopped the request (${message})`;
  if (name === 'HolderIncidentError') return `failed (${message})`;
  // Not said by this gateway's own code for a reader: only its kind is told.
  return `failed unexpectedly (${name})`;
}

function restore(name: string, server: string, method: string): Error | undefined {
  switch (name) {
    case 'UpstreamUnavailableError':
    case 'UnknownTopic':
      return new UpstreamUnavailableError(server, 'its gateway process does not serve it');
    case 'UpstreamTimeoutError':
      return new UpstreamTimeoutError(server, method, 0);
    case 'UpstreamBadResponseError':
      return new UpstreamBadResponseError(server, method, '');
    case 'UpstreamConnectionLostError':
      return new UpstreamConnectionLostError(server, method, '');
    default:
      return undefined;
  }
}
