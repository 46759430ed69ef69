import { JSONRPCMessageSchema, LoggingLevelSchema } from '@modelcontextprotocol/core';
import type { JSONRPCMessage } from '@modelcontextprotocol/server';
import { z } from 'zod';
import type { ReplicaMessage, SessionRecord } from './shared-state.js';

/**
 * Checked against the SDK's schema, but passed on as received: the SDK's parse output reorders
 * and fills fields, and a relayed message must reach its client as it was sent.
 */
export const JsonRpcMessage = z.custom<JSONRPCMessage>((value) => JSONRPCMessageSchema.safeParse(value).success, 'not a JSON-RPC message');

/** What Redis holds for a session, checked on the way back in (anything with access to Redis can write it). */
export const SessionRecordSchema = z.object({
  id: z.string(),
  principal: z.string(),
  rateKey: z.string(),
  wire: z.enum(['streamable-http', 'sse']),
  initialize: z.object({
    protocolVersion: z.string(),
    capabilities: z.record(z.string(), z.unknown()),
    clientInfo: z.record(z.string(), z.unknown()),
  }),
  logLevel: LoggingLevelSchema.optional(),
  subscriptions: z.array(z.string()),
  streamHolder: z.string().optional(),
  createdAt: z.number(),
});

export const ReplicaMessageSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('session-closed'), session: z.string() }),
  z.object({ kind: z.literal('to-client'), session: z.string(), message: JsonRpcMessage }),
  z.object({ kind: z.literal('from-client'), session: z.string(), message: JsonRpcMessage }),
  z.object({ kind: z.literal('session-changed'), session: z.string() }),
  z.object({ kind: z.literal('config-changed'), what: z.enum(['servers', 'access', 'api-keys']), detail: z.string().optional() }),
  // Payloads are checked by whoever serves their topic: only it knows their shape.
  z.object({ kind: z.literal('rpc'), topic: z.string(), id: z.string(), payload: z.unknown() }),
  z.object({ kind: z.literal('rpc-reply'), id: z.string(), ok: z.boolean(), payload: z.unknown() }),
  z.object({ kind: z.literal('event'), topic: z.string(), payload: z.unknown() }),
]);

/** One message on the replica bus, as published. */
export const BusPayloadSchema = z.object({ from: z.string(), message: ReplicaMessageSchema });
export type BusPayload = z.infer<typeof BusPayloadSchema>;

// The schemas must describe exactly the contract's types: a field added to one fails compilation here.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const schemasMatchContract: [Same<z.infer<typeof SessionRecordSchema>, SessionRecord>, Same<z.infer<typeof ReplicaMessageSchema>, ReplicaMessage>] = [true, true];
void schemasMatchContract;
