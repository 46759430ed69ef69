import { randomBytes } from 'node:crypto';
import { ProtocolError, ProtocolErrorCode } from '@modelcontextprotocol/client';

/** The methods that name a task (by its `taskId`). */
export const TASK_METHODS: ReadonlySet<string> = new Set(['tasks/get', 'tasks/update', 'tasks/cancel']);

/**
 * The field of a request that names a value an upstream minted: a task method's `taskId`, or
 * the `requestState` of a retry after `input_required`; undefined when there is none.
 */
export function mintedFieldOf(method: string, params: Record<string, unknown> | undefined): 'taskId' | 'requestState' | undefined {
  if (TASK_METHODS.has(method) && typeof params?.taskId === 'string') return 'taskId';
  return typeof params?.requestState === 'string' ? 'requestState' : undefined;
}

/** Whether `result` carries a task id its upstream minted: a task handle, or a task method's answer. */
export function carriesTaskId(method: string, result: Record<string, unknown>): result is Record<string, unknown> & { taskId: string } {
  return (result.resultType === 'task' || TASK_METHODS.has(method)) && typeof result.taskId === 'string';
}

/** `value` prefixed with `<prefix><key>.`: a key without `.` marks where it came from. */
export function tagWith(prefix: string, key: string, value: string): string {
  return `${prefix}${key}.${value}`;
}

/** The key and the original value of a value `tagWith(prefix, …)` made; undefined for any other. */
export function untag(prefix: string, value: string): { key: string; value: string } | undefined {
  if (!value.startsWith(prefix)) return undefined;
  const rest = value.slice(prefix.length);
  const dot = rest.indexOf('.');
  if (dot <= 0) return undefined;
  return { key: rest.slice(0, dot), value: rest.slice(dot + 1) };
}

/**
 * What a task id starts with once it has left a stdio server's process:
 * `conflux.process.<process key>.<the server's own id>`. A task lives in the process that
 * created it, and another process of the same server (after a restart, on another gateway
 * process, or a new holder of a `processes: one` server) may have minted the very same id for
 * somebody else's task: a task request is sent only to the process whose key it carries.
 */
export const PROCESS_TOKEN_PREFIX = 'conflux.process.';

/** A new process's key: random, base64url (never a `.`). */
export function newProcessKey(): string {
  return randomBytes(9).toString('base64url');
}

/** What `ForeignTaskError` says in its `data.reason`, recognisable after crossing the replica bus. */
export const FOREIGN_TASK_REASON = 'task_of_another_process';

/** The answer to a task request whose task was created by another process than the one running now. */
export class ForeignTaskError extends ProtocolError {
  constructor(server: string) {
    super(ProtocolErrorCode.InvalidParams, `Unknown task: the process of "${server}" that created it is no longer running`, { reason: FOREIGN_TASK_REASON });
  }
}

/** Whether `error` is a `ForeignTaskError`, here or as it came back from another replica. */
export function isForeignTask(error: unknown): boolean {
  return error instanceof ProtocolError && (error.data as { reason?: unknown } | undefined)?.reason === FOREIGN_TASK_REASON;
}

/**
 * `params` of a task request with the task id as the process with `processKey` minted it;
 * `ForeignTaskError` when the id is another process's (or was never one of this server's).
 */
export function taskIdForProcess(server: string, processKey: string, method: string, params: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (mintedFieldOf(method, params) !== 'taskId') return params;
  const tag = untag(PROCESS_TOKEN_PREFIX, params!.taskId as string);
  if (!tag || tag.key !== processKey) throw new ForeignTaskError(server);
  return { ...params, taskId: tag.value };
}

/** `result` with the task id it carries (if any) tagged with the process that minted it. */
export function taskIdFromProcess<T extends Record<string, unknown>>(processKey: string, method: string, result: T): T {
  return carriesTaskId(method, result) ? { ...result, taskId: tagWith(PROCESS_TOKEN_PREFIX, processKey, result.taskId) } : result;
}
