import type { Context } from 'hono';
import { AccessDeniedError } from '../../auth/access-policy.js';
import type { AuditLog } from '../../observability/audit-log.js';
import type { Caller } from '../caller.js';

/** The authenticated caller, set by the caller middleware in front of the API. */
export function callerOf(c: Context): Caller {
  return (c as Context<{ Variables: { caller: Caller } }>).get('caller');
}

/** The caller, when it has the admin role. */
export function requireAdmin(c: Context): Caller {
  const caller = callerOf(c);
  if (!caller.access.admin) throw new AccessDeniedError('this operation needs the admin role (membership of the admin group)');
  return caller;
}

/**
 * Runs an admin change: refused (and audited as denied) without the admin role, audited as
 * done or failed otherwise.
 */
export async function adminAction<T>(audit: AuditLog, c: Context, action: string, args: unknown, run: () => Promise<T>): Promise<T> {
  const { principal } = callerOf(c);
  const record = (status: 'ok' | 'error' | 'denied', error?: string) =>
    audit.record({ kind: 'admin', principal, channel: 'rest', server: undefined, target: action, arguments: args, status, error });
  try {
    requireAdmin(c);
  } catch (error) {
    record('denied', (error as Error).message);
    throw error;
  }
  try {
    const result = await run();
    record('ok');
    return result;
  } catch (error) {
    record('error', (error as Error).message);
    throw error;
  }
}
