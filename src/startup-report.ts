import { resolve } from 'node:path';
import type { AuthSettings } from './config/schema.js';
import { postgresTarget } from './store/database-errors.js';
import type { ServerStatus } from './upstream/upstream.js';

/** What a person starting the gateway reads first: each line answers "is it using what I meant?". */

type Settling = Pick<ServerStatus, 'name' | 'state' | 'lastError'>;

/** `gateway.auth` in words: `none`, or the ways a caller may prove who they are. */
export function describeAuth(auth: AuthSettings): string {
  if (auth === 'none') return 'none';
  const ways = [
    auth.oauth && `OAuth tokens from ${auth.oauth.issuer}`,
    auth.apiKeys && 'API keys',
    auth.jwt && 'JWTs signed with a shared secret',
    auth.trustedHeaders && `identity headers from ${auth.trustedHeaders.proxies.join(', ')}`,
  ].filter(Boolean);
  return ways.join(', ');
}

/** The database in use, never with its credentials: PostgreSQL's address, or the embedded folder. */
export function describeDatabase(url: string | undefined, dataDir: string): string {
  if (!url) return `embedded PGlite in ${resolve(dataDir)}`;
  const { address, database } = postgresTarget(url);
  return `PostgreSQL at ${address}/${database}`;
}

/**
 * "3/3 upstreams ready", or which are not and why. Disabled servers are not counted: they are
 * not meant to be up.
 */
export function describeUpstreams(statuses: readonly Settling[]): string {
  const counted = statuses.filter((s) => s.state !== 'disabled');
  if (counted.length === 0) return 'no upstreams configured';
  const notReady = counted.filter((s) => s.state !== 'ready');
  const summary = `${counted.length - notReady.length}/${counted.length} upstreams ready`;
  if (notReady.length === 0) return summary;
  return `${summary}; ${notReady.map((s) => `${s.name} is ${s.state}${s.lastError ? ` (${s.lastError})` : ''}`).join('; ')}`;
}

export interface SettlingUpstreams {
  settled(timeoutMs: number): Promise<void>;
  statuses(): Settling[];
}

/**
 * Waits (at most `timeoutMs`) for every upstream to finish connecting, telling which ones it
 * still waits for after `firstReportMs` and then every `reportEveryMs`: a slow server (a
 * package downloaded on its first start) otherwise looks like a hang.
 */
export async function settleWithProgress(
  upstreams: SettlingUpstreams,
  timeoutMs: number,
  tell: (line: string) => void,
  { firstReportMs = 1000, reportEveryMs = 5000 }: { firstReportMs?: number; reportEveryMs?: number } = {},
): Promise<void> {
  const started = Date.now();
  const report = () => {
    const waiting = upstreams.statuses().filter((s) => s.state === 'connecting').map((s) => s.name);
    if (waiting.length > 0) {
      const seconds = Math.round((Date.now() - started) / 1000);
      tell(`waiting for ${waiting.join(', ')} to connect (${seconds} s so far, at most ${Math.round(timeoutMs / 1000)} s)…`);
    }
    timer = setTimeout(report, reportEveryMs);
  };
  let timer = setTimeout(report, firstReportMs);
  try {
    await upstreams.settled(timeoutMs);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * How long to wait for servers to finish connecting: the longest a server's connection may take
 * (`connectTimeout`, else its `timeout` and at least 10 s), at least 5 s.
 */
export function connectBudgetMs(servers: Iterable<{ timeout: number; connectTimeout?: number | undefined }>): number {
  return Math.max(5, ...[...servers].map((s) => s.connectTimeout ?? Math.max(10, s.timeout))) * 1000;
}
