import { MissingRequiredClientCapabilityError, ProtocolErrorCode, type ClientCapabilities } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { WireMcpError } from './error-mapping.js';

/**
 * The Tasks extension (SEP-2663) as it travels on 2026-07-28: a `tools/call` may be answered
 * with a task handle (`resultType: "task"` and the task's fields, flat), which the client then
 * follows with `tasks/get` (the task, its result or error inlined once terminal), `tasks/update`
 * (answers to the task's `inputRequests`) and `tasks/cancel`, all naming the `taskId`; status
 * changes may be pushed as `notifications/tasks` on a `subscriptions/listen` stream whose filter
 * names the task ids. A client opts in per request, in its declared capabilities.
 */
export const TASKS_EXTENSION = 'io.modelcontextprotocol/tasks';

export const TASK_STATUSES = ['working', 'input_required', 'completed', 'failed', 'cancelled'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

/** A task's own fields as every task message carries them (plus, per status, `result`, `error` or `inputRequests`). */
export interface TaskFields {
  taskId: string;
  status: TaskStatus;
  statusMessage?: string;
  createdAt: string;
  lastUpdatedAt: string;
  ttlMs: number | null;
  pollIntervalMs?: number;
  [key: string]: unknown;
}

/** The params of `tasks/get`, `tasks/update` and `tasks/cancel` as a handler sees them (`inputResponses` comes separately). */
export const TaskIdParams = z.looseObject({ taskId: z.string() });

/** Whether capabilities (a client's declared on a request, or a server's) include the Tasks extension. */
export function declaresTasks(capabilities: object | undefined): boolean {
  const extensions = (capabilities as { extensions?: unknown } | undefined)?.extensions;
  if (extensions === null || typeof extensions !== 'object') return false;
  const tasks = (extensions as Record<string, unknown>)[TASKS_EXTENSION];
  return tasks !== null && typeof tasks === 'object' && !Array.isArray(tasks);
}

/** Whether an upstream's `tools/call` answer is a task handle rather than the tool's result. */
export function isTaskHandle(result: Record<string, unknown>): result is Record<string, unknown> & TaskFields {
  return result.resultType === 'task' && typeof result.taskId === 'string' && typeof result.status === 'string';
}

/**
 * A `tools/call`'s params without the `task` field of the 2025-11-25 experiment, whose tasks
 * Conflux does not relay (a client of that revision could not be given the task's later
 * messages): an upstream that supports them runs the call and answers it directly.
 */
export function withoutLegacyTaskParam<P extends { task?: unknown }>(params: P): Omit<P, 'task'> {
  if (!('task' in params)) return params;
  const { task: _dropped, ...rest } = params;
  return rest;
}

/** Whether a task can change no more. */
export function isTerminal(status: unknown): boolean {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}

/**
 * The answer to a task id that does not exist for the caller: unknown, expired, or another
 * principal's (which must be indistinguishable from unknown). The code is the extension's.
 */
export function unknownTask(taskId: string): WireMcpError {
  return new WireMcpError(ProtocolErrorCode.InvalidParams, `Unknown task: ${JSON.stringify(taskId)}`);
}

/** A task request from a client that did not declare the extension on it (-32021, naming what is missing). */
export function tasksNotDeclared(method: string): MissingRequiredClientCapabilityError {
  return new MissingRequiredClientCapabilityError(
    { requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } } as ClientCapabilities },
    `${method} needs the ${TASKS_EXTENSION} extension declared in the request's client capabilities`,
  );
}
