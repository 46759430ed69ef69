import { ProtocolError, ProtocolErrorCode, type CallToolResult, type Result, type Server, type ServerContext } from '@modelcontextprotocol/server';
import { AccessDeniedError, type Access } from '../auth/access-policy.js';
import type { Upstream } from '../upstream/upstream.js';
import type { DownstreamCall } from './downstream-call.js';
import { asMcpError, WireMcpError } from './error-mapping.js';
import { forward, type ForwardDeps } from './forward.js';
import { TaskStatusFeed } from './task-status.js';
import { mintTaskId, routeExpiry, type TaskRoute, type TaskRouteStore } from './task-routes.js';
import { declaresTasks, TASKS_EXTENSION, TaskIdParams, tasksNotDeclared, unknownTask, type TaskFields } from './task-wire.js';

export interface TaskRelayDeps extends ForwardDeps {
  routes: TaskRouteStore;
  now?: (() => number) | undefined;
}

/**
 * The gateway's side of the Tasks extension: a task handle an upstream gives for a call is
 * handed to the client under an id the gateway mints (a table maps it to the server and the
 * upstream's own id), and the requests that name that id go to that server, for the principal
 * whose call created the task only, with the rights that call needed. To anyone else the id
 * does not exist: the answer is the one for an id nobody minted.
 */
export class TaskRelay {
  readonly status: TaskStatusFeed;
  readonly #deps: TaskRelayDeps;
  readonly #now: () => number;

  constructor(deps: TaskRelayDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.status = new TaskStatusFeed((taskId) => this.#poll(taskId), deps.logger.child({ component: 'tasks' }));
  }

  /**
   * Whether an upstream may answer `call` with a task: a 2026-07-28 request (the extension is a
   * 2026 one; such a request has no session) whose client declared the extension on it.
   */
  offeredTo(call: DownstreamCall): boolean {
    return call.channel === 'mcp' && call.sessionId === undefined && declaresTasks(call.clientCapabilities);
  }

  /** Takes over the task handle `server` gave for a call of its `tool`: the client gets it under a gateway id. */
  async adopt(server: string, tool: string, handle: TaskFields, call: DownstreamCall): Promise<CallToolResult> {
    const taskId = mintTaskId();
    const route: TaskRoute = { server, upstreamTaskId: handle.taskId, tool, owner: call.principal, expiresAt: routeExpiry(handle.ttlMs, this.#now()) };
    await this.#deps.routes.put(taskId, route);
    return { ...handle, taskId } as unknown as CallToolResult;
  }

  /** `tasks/get`: the task as its upstream reports it, under the client's id. */
  async get(taskId: string, call: DownstreamCall): Promise<Result> {
    const route = await this.#routeFor(taskId, call);
    const task = { ...(await this.#relay(taskId, route, 'tasks/get', {}, call)), taskId } as TaskFields;
    this.status.observe(task);
    return task as Result;
  }

  /** `tasks/update`: answers to the task's input requests, passed on as they are. */
  async update(taskId: string, inputResponses: Record<string, unknown>, call: DownstreamCall): Promise<Result> {
    return this.#relay(taskId, await this.#routeFor(taskId, call), 'tasks/update', { inputResponses }, call);
  }

  /** `tasks/cancel`: the upstream's acknowledgement; the outcome shows in the next `tasks/get`. */
  async cancel(taskId: string, call: DownstreamCall): Promise<Result> {
    return this.#relay(taskId, await this.#routeFor(taskId, call), 'tasks/cancel', {}, call);
  }

  /**
   * Whether `taskId` is one of the caller's tasks that it may still follow, for a listen
   * stream's filter: other ids are simply not honored, so the answer tells nothing about them.
   */
  async owns(taskId: string, access: Access): Promise<boolean> {
    const route = await this.#deps.routes.get(taskId);
    return route !== undefined && route.owner === access.principal.id && access.level(route.server, route.tool) === 'call';
  }

  /** Stops watching tasks (at shutdown). */
  close(): void {
    this.status.close();
  }

  /**
   * The route of the caller's task. Someone else's task is unknown to it, exactly as an id
   * nobody minted; its own task on a server it may no longer call is refused like the call.
   */
  async #routeFor(taskId: string, call: DownstreamCall): Promise<TaskRoute> {
    const route = await this.#deps.routes.get(taskId);
    if (!route || route.owner !== call.principal) throw unknownTask(taskId);
    if (!this.#deps.upstreams.get(route.server)) {
      // Its server was removed, and its tasks with it.
      await this.#deps.routes.delete(taskId);
      throw unknownTask(taskId);
    }
    if (call.access.level(route.server, route.tool) !== 'call') {
      throw new AccessDeniedError(`Access denied: you may no longer call the tool that created task ${JSON.stringify(taskId)}`);
    }
    return route;
  }

  /**
   * Sends a task request to the task's upstream under its own id. An upstream that no longer
   * knows the id (its record expired first) answers `tasks/get` or `tasks/cancel` with -32602
   * quoting its own id: the client gets the gateway's unknown-task answer instead, and the route
   * is dropped. (On `tasks/update` the same code may be about the answers, so it passes on.)
   */
  async #relay(taskId: string, route: TaskRoute, method: string, params: Record<string, unknown>, call: DownstreamCall): Promise<Record<string, unknown>> {
    try {
      return await forward(this.#deps, route.server, method, { ...params, taskId: route.upstreamTaskId }, call, { tasks: true });
    } catch (error) {
      if (method !== 'tasks/update' && error instanceof ProtocolError && error.code === ProtocolErrorCode.InvalidParams) {
        await this.#deps.routes.delete(taskId);
        throw unknownTask(taskId);
      }
      throw error;
    }
  }

  /** A watched task as its upstream reports it now; undefined once it is gone. */
  async #poll(taskId: string): Promise<TaskFields | undefined> {
    const route = await this.#deps.routes.get(taskId);
    // The task lives on its owner's instance when the server acts for each user: none is started to ask.
    const upstream = route && this.#deps.upstreams.running(route.server, route.owner);
    if (!route || !upstream) return undefined;
    await this.#deps.rateLimits?.server(route.server);
    try {
      return { ...(await upstream.request('tasks/get', { taskId: route.upstreamTaskId }, { tasks: true })), taskId } as TaskFields;
    } catch (error) {
      if (error instanceof ProtocolError && error.code === ProtocolErrorCode.InvalidParams) return undefined;
      throw error;
    }
  }
}

/**
 * Whether the gateway offers the extension: when an upstream advertises it, or might (one not
 * connected yet), as with the other capabilities.
 */
export function tasksOffered(upstreams: readonly Upstream[]): boolean {
  return upstreams.some((u) => u.state !== 'disabled' && (u.capabilities ? declaresTasks(u.capabilities) : true));
}

/**
 * Registers `tasks/get`, `tasks/update` and `tasks/cancel` on a 2026-07-28 request's server and
 * advertises the extension. (`tasks/result` and `tasks/list` are the 2025-11-25 experiment's;
 * the SDK answers them -32601 on this revision, as the extension requires.) Each needs the
 * extension declared on the request itself, else -32021 naming it.
 */
export function registerTaskHandlers(server: Server, relay: TaskRelay, callOf: (ctx: ServerContext) => DownstreamCall, logger: ForwardDeps['logger']): void {
  server.registerCapabilities({ extensions: { [TASKS_EXTENSION]: {} } });
  const guarded =
    <P>(method: string, handler: (params: P, call: DownstreamCall, ctx: ServerContext) => Promise<Result>) =>
    async (params: P, ctx: ServerContext): Promise<Result> => {
      try {
        const call = callOf(ctx);
        if (!declaresTasks(call.clientCapabilities)) throw tasksNotDeclared(method);
        return await handler(params, call, ctx);
      } catch (error) {
        throw asMcpError(error, logger);
      }
    };
  server.setRequestHandler('tasks/get', { params: TaskIdParams }, guarded('tasks/get', (params, call) => relay.get(params.taskId, call)));
  // The SDK takes `inputResponses` off every request (as the multi-round-trip field it also is) and hands them over in `ctx`.
  server.setRequestHandler(
    'tasks/update',
    { params: TaskIdParams },
    guarded('tasks/update', (params, call, ctx) => {
      const { inputResponses } = ctx.mcpReq;
      if (!inputResponses) throw new WireMcpError(ProtocolErrorCode.InvalidParams, 'Invalid params for tasks/update: inputResponses is required');
      return relay.update(params.taskId, inputResponses, call);
    }),
  );
  server.setRequestHandler('tasks/cancel', { params: TaskIdParams }, guarded('tasks/cancel', (params, call) => relay.cancel(params.taskId, call)));
}
