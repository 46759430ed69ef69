import { ProtocolError, ProtocolErrorCode, type CallToolResult, type Result, type Server, type ServerContext } from '@modelcontextprotocol/server';
import { setTimeout } from 'node:timers/promises';
import { z } from 'zod';
import { AccessDeniedError, type Access } from '../auth/access-policy.js';
import { ReplicaUnreachableError, type BusRpc } from '../state/bus-rpc.js';
import { isForeignTask } from '../upstream/minted-values.js';
import type { Upstream } from '../upstream/upstream.js';
import type { DownstreamCall } from './downstream-call.js';
import { asMcpError, isExpectedError, reportIncident, WireMcpError } from './error-mapping.js';
import { forward, type ForwardDeps } from './forward.js';
import { HolderIncidentError, localError } from './owner-wire.js';
import { TaskStatusFeed } from './task-status.js';
import { mintTaskId, routeExpiry, type TaskRoute, type TaskRouteStore } from './task-routes.js';
import { declaresTasks, TASKS_EXTENSION, TaskIdParams, tasksNotDeclared, unknownTask, type TaskFields } from './task-wire.js';

export interface TaskRelayDeps extends ForwardDeps {
  routes: TaskRouteStore;
  /** This gateway process and the bus to the others: a task held by another's child process is asked for there. */
  replicas: { replicaId: string; rpc: BusRpc };
  now?: (() => number) | undefined;
}

/** The bus topic on which a gateway process serves requests for the tasks its own child processes hold. */
const TASK_REQUEST_TOPIC = 'tasks.request';
/** How long a task request sent to another gateway process waits beyond the upstream's own timeout (which that process enforces). */
const REMOTE_MARGIN_MS = 5000;
/** How long after finding no gateway process under the holder's id it is looked for again (a bus subscription being made again takes about this). */
const ABSENT_RETRY_MS = 1000;

const RemoteTaskRequest = z.object({
  taskId: z.string(),
  principal: z.string(),
  method: z.enum(['tasks/get', 'tasks/update', 'tasks/cancel']),
  params: z.record(z.string(), z.unknown()),
});
type RemoteTaskRequest = z.infer<typeof RemoteTaskRequest>;

/** The answer to a `RemoteTaskRequest`: the upstream's result, or that the task is not known there. */
const RemoteTaskAnswer = z.union([z.object({ result: z.record(z.string(), z.unknown()) }), z.object({ unknown: z.literal(true) })]);
type RemoteTaskAnswer = z.infer<typeof RemoteTaskAnswer>;

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
  readonly #stopServing: () => void;

  constructor(deps: TaskRelayDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.status = new TaskStatusFeed((taskId) => this.#poll(taskId), deps.logger.child({ component: 'tasks' }));
    this.#stopServing = deps.replicas.rpc.serve(TASK_REQUEST_TOPIC, (payload) => this.#serveRemote(RemoteTaskRequest.parse(payload)));
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
    if (this.#heldHere(server)) route.replica = this.#deps.replicas.replicaId;
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

  /** Stops watching tasks and serving other gateway processes' requests for them (at shutdown). */
  close(): void {
    this.#stopServing();
    this.status.close();
  }

  /**
   * Whether a task `server` creates lives in a child process of this gateway process: a stdio
   * server run by each gateway process (for everybody, or for each user). One with
   * `processes: one` is reached alike from every gateway process, as an HTTP server is.
   */
  #heldHere(server: string): boolean {
    const config = this.#deps.upstreams.get(server)?.config;
    return config?.transport === 'stdio' && config.processes !== 'one';
  }

  /** Whether the route's task is held by another gateway process's child. */
  #heldElsewhere(route: TaskRoute): route is TaskRoute & { replica: string } {
    return route.replica !== undefined && route.replica !== this.#deps.replicas.replicaId;
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
  async #relay(taskId: string, route: TaskRoute, method: RemoteTaskRequest['method'], params: Record<string, unknown>, call: DownstreamCall): Promise<Record<string, unknown>> {
    if (this.#heldElsewhere(route)) {
      await this.#deps.rateLimits.server(route.server);
      const answer = await this.#askHolder(route, { taskId, principal: call.principal, method, params }, call.signal);
      if ('result' in answer) return answer.result;
      await this.#deps.routes.delete(taskId);
      throw unknownTask(taskId);
    }
    try {
      return await forward(this.#deps, route.server, method, { ...params, taskId: route.upstreamTaskId }, call, { tasks: true });
    } catch (error) {
      if (isGone(method, error)) {
        await this.#deps.routes.delete(taskId);
        throw unknownTask(taskId);
      }
      throw error;
    }
  }

  /**
   * Sends a task request to the gateway process holding the task. One that is gone took the
   * task with it: the answer is that it is unknown.
   */
  async #askHolder(route: TaskRoute & { replica: string }, request: RemoteTaskRequest, signal?: AbortSignal): Promise<RemoteTaskAnswer> {
    const timeoutMs = (this.#deps.upstreams.get(route.server)?.config.timeout ?? 60) * 1000 + REMOTE_MARGIN_MS;
    const ask = async () => RemoteTaskAnswer.parse(await this.#deps.replicas.rpc.call(route.replica, TASK_REQUEST_TOPIC, request, { timeoutMs, signal }));
    try {
      try {
        return await ask();
      } catch (error) {
        // Nobody under its id: stopped, or subscribing to the bus again. Absent a second time, a moment later, it is gone.
        if (!(error instanceof ReplicaUnreachableError && error.absent)) throw error;
        await setTimeout(ABSENT_RETRY_MS, undefined, { signal });
        return await ask();
      }
    } catch (error) {
      if (error instanceof ReplicaUnreachableError && error.absent) return { unknown: true };
      // Slow, or this replica is closing: the task may well be there; the client may ask again.
      throw localError(error, route.server, request.method);
    }
  }

  /**
   * Another gateway process's request for a task one of this process's children holds. The
   * route is read here again (the shared store has it): the task must be the principal's and
   * held here; the rights were judged where the client's call is.
   */
  async #serveRemote(request: RemoteTaskRequest): Promise<RemoteTaskAnswer> {
    const route = await this.#deps.routes.get(request.taskId);
    const upstream = route && route.owner === request.principal && route.replica === this.#deps.replicas.replicaId ? this.#deps.upstreams.running(route.server, route.owner) : undefined;
    if (!route || !upstream) return { unknown: true };
    try {
      return { result: await upstream.request(request.method, { ...request.params, taskId: route.upstreamTaskId }, { tasks: true }) };
    } catch (error) {
      if (isGone(request.method, error)) return { unknown: true };
      if (isExpectedError(error)) throw error;
      // Logged here, where it happened; the asking replica gets the incident id only.
      throw new HolderIncidentError(reportIncident(error, this.#deps.logger, { server: route.server, method: request.method }).message);
    }
  }

  /** A watched task as its upstream reports it now; undefined once it is gone. */
  async #poll(taskId: string): Promise<TaskFields | undefined> {
    const route = await this.#deps.routes.get(taskId);
    if (!route) return undefined;
    if (this.#heldElsewhere(route)) {
      await this.#deps.rateLimits.server(route.server);
      const answer = await this.#askHolder(route, { taskId, principal: route.owner, method: 'tasks/get', params: {} });
      return 'result' in answer ? ({ ...answer.result, taskId } as TaskFields) : undefined;
    }
    // The task lives on its owner's instance when the server acts for each user: none is started to ask.
    const upstream = this.#deps.upstreams.running(route.server, route.owner);
    if (!upstream) return undefined;
    await this.#deps.rateLimits.server(route.server);
    try {
      return { ...(await upstream.request('tasks/get', { taskId: route.upstreamTaskId }, { tasks: true })), taskId } as TaskFields;
    } catch (error) {
      if (isGone('tasks/get', error)) return undefined;
      throw error;
    }
  }
}

/**
 * Whether `error` says the upstream no longer has the task: it was created by another process
 * than the one running now, or the upstream answered -32602 quoting its own id to `tasks/get`
 * or `tasks/cancel` (its record expired first). On `tasks/update` -32602 may be about the
 * answers, so only the first is.
 */
function isGone(method: string, error: unknown): boolean {
  if (isForeignTask(error)) return true;
  return method !== 'tasks/update' && error instanceof ProtocolError && error.code === ProtocolErrorCode.InvalidParams;
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
