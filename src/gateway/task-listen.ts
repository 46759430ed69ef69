import {
  SERVER_INFO_META_KEY,
  SUBSCRIPTION_ID_META_KEY,
  type ServerCapabilities,
  type ServerEvent,
  type ServerEventBus,
} from '@modelcontextprotocol/server';
import type { Access } from '../auth/access-policy.js';
import { GATEWAY_NAME, GATEWAY_VERSION } from '../version.js';
import { classifyPost } from './inbound-classification.js';
import type { TaskRelay } from './task-relay.js';
import type { TaskFields } from './task-wire.js';

/** As the SDK's listen streams: a comment frame this often keeps proxies from closing an idle stream. */
const KEEP_ALIVE_MS = 15_000;
/** SEP-2243's `HeaderMismatch`, which the SDK answers a request without its standard headers with (HTTP 400). */
const HEADER_MISMATCH = -32020;
/** Task ids one stream may watch: each is a poll of its upstream while it runs. */
export const MAX_TASKS_PER_STREAM = 64;

export interface TaskListenOptions {
  relay: TaskRelay;
  /** Where the catalog's list changes are published (the bus the SDK's own listen streams read). */
  bus: ServerEventBus;
  /** The capabilities a 2026-07-28 caller is offered now: list changes are honored only where they are. */
  capabilities: () => ServerCapabilities;
  /** Open streams of this kind, all callers together. */
  maxStreams: number;
}

type ListFlag = 'toolsListChanged' | 'promptsListChanged' | 'resourcesListChanged';

interface HonoredFilter {
  toolsListChanged?: true;
  promptsListChanged?: true;
  resourcesListChanged?: true;
  taskIds?: string[];
}

/**
 * `subscriptions/listen` streams whose filter names task ids (`notifications.taskIds`, the
 * Tasks extension's): the SDK's listen streams honor the four filter fields of the core
 * revision only, so these are served here, list changes included, with the same wire (an
 * acknowledgement naming what is honored first, each notification stamped with the stream's
 * subscription id, keep-alive comments, a final result when the gateway ends it).
 *
 * Only the caller's own tasks, which it may still call the tool of, are honored; any other id
 * is left out of the acknowledgement exactly as an unknown one, and nothing about it is sent.
 */
export class TaskListen {
  readonly #options: TaskListenOptions;
  readonly #open = new Set<() => void>();

  constructor(options: TaskListenOptions) {
    this.#options = options;
  }

  /**
   * Serves `body` when it is a well-formed 2026-07-28 listen request naming task ids; undefined
   * for anything else, which the SDK serves (and refuses, when the request is malformed).
   */
  async serve(request: Request, body: unknown, access: Access): Promise<Response | undefined> {
    const taskIds = requestedTaskIds(body);
    if (!taskIds) return undefined;
    const { headers } = request;
    const classified = classifyPost(headers, body);
    if (classified.kind !== 'modern' || classified.messageKind !== 'request') return undefined;
    const id = classified.message.id;
    // The SDK's next rung, which a request served here would otherwise skip: classification
    // reads the body, and only this refuses a request without the headers infrastructure routes on.
    const missing = missingStandardHeader(headers, classified.classification.revision);
    if (missing) {
      return Response.json({ jsonrpc: '2.0', id, error: { code: HEADER_MISMATCH, message: `Bad Request: the request headers and body disagree: ${missing}`, data: { mismatch: { header: '(missing)', body: missing } } } }, { status: 400 });
    }
    if (this.#open.size >= this.#options.maxStreams) {
      return Response.json({ jsonrpc: '2.0', id, error: { code: -32603, message: 'Subscription limit reached' } });
    }
    const honored = await this.#honored(body as ListenBody, taskIds, access);
    return this.#stream(id, honored, request.signal);
  }

  /** Ends every stream with its final result (at shutdown). */
  closeAll(): void {
    for (const close of [...this.#open]) close();
  }

  async #honored(body: ListenBody, taskIds: readonly string[], access: Access): Promise<HonoredFilter> {
    const requested = body.params.notifications;
    const capabilities = this.#options.capabilities();
    const honored: HonoredFilter = {};
    const flags: [ListFlag, unknown][] = [
      ['toolsListChanged', capabilities.tools?.listChanged],
      ['promptsListChanged', capabilities.prompts?.listChanged],
      ['resourcesListChanged', capabilities.resources?.listChanged],
    ];
    for (const [flag, offered] of flags) if (requested[flag] === true && offered === true) honored[flag] = true;
    const owned: string[] = [];
    for (const taskId of new Set(taskIds)) {
      if (owned.length >= MAX_TASKS_PER_STREAM) break;
      if (await this.#options.relay.owns(taskId, access)) owned.push(taskId);
    }
    if (owned.length > 0) honored.taskIds = owned;
    return honored;
  }

  #stream(id: string | number, honored: HonoredFilter, signal: AbortSignal): Response {
    const encoder = new TextEncoder();
    const stop: (() => void)[] = [];
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    let closed = false;
    const write = (frame: string) => {
      if (!closed) controller.enqueue(encoder.encode(frame));
    };
    const send = (method: string, params: Record<string, unknown>) => {
      const meta = { ...(params._meta as Record<string, unknown> | undefined), [SUBSCRIPTION_ID_META_KEY]: id };
      write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method, params: { ...params, _meta: meta } })}\n\n`);
    };
    const teardown = (graceful: boolean) => {
      if (closed) return;
      if (graceful) {
        const meta = { [SUBSCRIPTION_ID_META_KEY]: id, [SERVER_INFO_META_KEY]: { name: GATEWAY_NAME, version: GATEWAY_VERSION } };
        write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id, result: { resultType: 'complete', _meta: meta } })}\n\n`);
      }
      closed = true;
      for (const s of stop) s();
      this.#open.delete(close);
      try {
        controller.close();
      } catch {
        // Already closed by the client going away.
      }
    };
    const close = () => teardown(true);
    const body = new ReadableStream<Uint8Array>({
      start: (c) => {
        controller = c;
        const { taskIds, ...lists } = honored;
        send('notifications/subscriptions/acknowledged', { notifications: honored });
        if (Object.keys(honored).length === 0) return teardown(true);
        this.#open.add(close);
        if (Object.keys(lists).length > 0) {
          stop.push(this.#options.bus.subscribe((event) => {
            const method = listChangeMethod(event, lists);
            if (method) send(method, event.params ?? {});
          }));
        }
        for (const taskId of taskIds ?? []) {
          stop.push(this.#options.relay.status.watch(taskId, (task: TaskFields) => send('notifications/tasks', task)));
        }
        const keepAlive = setInterval(() => write(': keepalive\n\n'), KEEP_ALIVE_MS);
        keepAlive.unref();
        stop.push(() => clearInterval(keepAlive));
      },
      cancel: () => teardown(false),
    });
    if (signal.aborted) teardown(false);
    else {
      const onAbort = () => teardown(false);
      signal.addEventListener('abort', onAbort, { once: true });
      stop.push(() => signal.removeEventListener('abort', onAbort));
    }
    return new Response(body, {
      status: 200,
      headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache, no-transform', connection: 'keep-alive', 'x-accel-buffering': 'no' },
    });
  }
}

/**
 * The SDK's check of a 2026-07-28 request's required standard headers (not exported by it),
 * in its order and words: what is missing, or undefined. `Mcp-Name` has no source in a listen request.
 */
function missingStandardHeader(headers: Headers, claimed: string | undefined): string | undefined {
  if (headers.get('mcp-protocol-version') === null) {
    return claimed === undefined
      ? 'the body carries a modern per-request envelope but the required MCP-Protocol-Version header is absent'
      : `the body envelope names protocol version ${claimed} but the required MCP-Protocol-Version header is absent`;
  }
  if (headers.get('mcp-method') === null) return 'the body names method subscriptions/listen but the required Mcp-Method header is absent';
  return undefined;
}

interface ListenBody {
  params: { notifications: Record<string, unknown> & { taskIds: string[] } };
}

/** The task ids a `subscriptions/listen` body names, when it is one that names any. */
function requestedTaskIds(body: unknown): readonly string[] | undefined {
  if (body === null || typeof body !== 'object' || (body as { method?: unknown }).method !== 'subscriptions/listen') return undefined;
  const notifications = (body as { params?: { notifications?: { taskIds?: unknown } } }).params?.notifications;
  const taskIds = notifications?.taskIds;
  if (!Array.isArray(taskIds) || taskIds.length === 0 || !taskIds.every((t) => typeof t === 'string')) return undefined;
  return taskIds as string[];
}

function listChangeMethod(event: ServerEvent, honored: Omit<HonoredFilter, 'taskIds'>): string | undefined {
  switch (event.kind) {
    case 'tools_list_changed':
      return honored.toolsListChanged ? 'notifications/tools/list_changed' : undefined;
    case 'prompts_list_changed':
      return honored.promptsListChanged ? 'notifications/prompts/list_changed' : undefined;
    case 'resources_list_changed':
      return honored.resourcesListChanged ? 'notifications/resources/list_changed' : undefined;
    default:
      // Resource updates are not offered on 2026-07-28 (see `mergedCapabilities`).
      return undefined;
  }
}
