import { CLIENT_CAPABILITIES_META_KEY, type ClientCapabilities, type JSONRPCMessage, type Transport } from '@modelcontextprotocol/client';

/**
 * The Tasks extension (SEP-2663) upstream. The SDK 2.4 client knows the result types
 * `complete` and `input_required` only: a `tools/call` answered with a task handle
 * (`resultType: "task"`) is refused as an unsupported result before any caller sees it. The
 * gateway passes such handles on, so the transport hands them to the client disguised as a
 * complete result that carries the handle whole, and `request()` takes it back out.
 */
const CARRIED_HANDLE = 'conflux/task-handle';

const TASKS_EXTENSION = 'io.modelcontextprotocol/tasks';

/** Makes the SDK client on `transport` (already connected) take task handles through as complete results. */
export function carryTaskHandles(transport: Transport): void {
  const deliver = transport.onmessage;
  if (!deliver) return;
  transport.onmessage = (message, extra) => deliver(carried(message), extra);
}

function carried(message: JSONRPCMessage): JSONRPCMessage {
  if (!('result' in message)) return message;
  const result = message.result as Record<string, unknown> | undefined;
  if (result?.resultType !== 'task') return message;
  return { ...message, result: { resultType: 'complete', content: [], [CARRIED_HANDLE]: result } } as JSONRPCMessage;
}

/** The task handle a result carries, as the upstream sent it, or the result itself. */
export function withTaskHandle<T extends Record<string, unknown>>(result: T): T {
  const handle = result[CARRIED_HANDLE];
  return handle !== null && typeof handle === 'object' && !Array.isArray(handle) ? (handle as T) : result;
}

/**
 * `params` declaring the Tasks extension for this one request (its client capabilities are
 * those the connection declares, plus the extension), so the upstream may answer with a task.
 */
export function declaringTasks(params: Record<string, unknown> | undefined, capabilities: ClientCapabilities): Record<string, unknown> {
  const meta = (params?._meta as Record<string, unknown> | undefined) ?? {};
  const extensions = (capabilities as { extensions?: Record<string, unknown> }).extensions ?? {};
  return {
    ...params,
    _meta: { ...meta, [CLIENT_CAPABILITIES_META_KEY]: { ...capabilities, extensions: { ...extensions, [TASKS_EXTENSION]: {} } } },
  };
}
