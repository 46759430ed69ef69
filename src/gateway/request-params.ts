import { specTypeSchemas, type SpecTypes, type StandardSchemaV1, type StandardSchemaV1Sync } from '@modelcontextprotocol/server';
import { invalidParams } from './error-mapping.js';

/**
 * The requests the gateway serves and the spec type each one must fit. The SDK's own
 * validators (`specTypeSchemas`) are the source of truth; this table only names them.
 */
const REQUEST_TYPES = {
  'tools/list': 'ListToolsRequest',
  'tools/call': 'CallToolRequest',
  'prompts/list': 'ListPromptsRequest',
  'prompts/get': 'GetPromptRequest',
  'resources/list': 'ListResourcesRequest',
  'resources/templates/list': 'ListResourceTemplatesRequest',
  'resources/read': 'ReadResourceRequest',
  'resources/subscribe': 'SubscribeRequest',
  'resources/unsubscribe': 'UnsubscribeRequest',
  'completion/complete': 'CompleteRequest',
  'logging/setLevel': 'SetLevelRequest',
} as const;

export type ServedMethod = keyof typeof REQUEST_TYPES;
export type ServedRequest<M extends ServedMethod> = SpecTypes[(typeof REQUEST_TYPES)[M]];

/**
 * `{ method, params }` checked against the method's spec type; -32602 naming each problem by
 * its path when it does not fit (the SDK would answer -32603, or -32602 with its validator's
 * raw output).
 */
export function checkedRequest<M extends ServedMethod>(method: M, params: unknown): ServedRequest<M> {
  const schema = specTypeSchemas[REQUEST_TYPES[method]] as unknown as StandardSchemaV1Sync<unknown, ServedRequest<M>>;
  const outcome = schema['~standard'].validate(params === undefined ? { method } : { method, params });
  if (outcome.issues) throw invalidParams(method, outcome.issues);
  return outcome.value;
}

/**
 * Accepts any object unchanged: the params handlers are registered with, so that the SDK hands
 * them over as they came and `checkedRequest` answers a mismatch (the SDK's own check of a spec
 * method answers -32603 with its validator's output); and the results of requests relayed to the
 * client, which the upstream that asked checks itself.
 */
export const UNCHECKED: StandardSchemaV1<Record<string, unknown>> = {
  '~standard': { version: 1, vendor: 'conflux', validate: (value) => ({ value: value as Record<string, unknown> }) },
};
