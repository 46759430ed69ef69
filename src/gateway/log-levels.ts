import type { LoggingLevel } from '@modelcontextprotocol/server';

const LEVELS: readonly LoggingLevel[] = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];

/**
 * The threshold of a session that never sent `logging/setLevel`, for the log messages its own
 * calls cause. The spec leaves the choice to the server; `info` keeps what a client usually
 * wants to see about its call (and what the conformance suite's logging tool sends) while
 * leaving out `debug`, the level upstreams fill with internals. Above all, it is fixed: it
 * never follows the level another session asked for.
 */
export const DEFAULT_LOG_THRESHOLD: LoggingLevel = 'info';

/** Whether a message at `level` passes `threshold`. */
export function allows(threshold: LoggingLevel, level: LoggingLevel): boolean {
  return LEVELS.indexOf(level) >= LEVELS.indexOf(threshold);
}

/**
 * What a caller receives about its own calls: the level it set (a 2025 session's
 * `logging/setLevel`, the level a 2026-07-28 request names in its `_meta`), else the default.
 */
export function thresholdOf(set: LoggingLevel | undefined): LoggingLevel {
  return set ?? DEFAULT_LOG_THRESHOLD;
}

/** The most verbose of `levels`, or undefined for none. */
export function mostVerbose(levels: Iterable<LoggingLevel>): LoggingLevel | undefined {
  let best: number | undefined;
  for (const level of levels) {
    const rank = LEVELS.indexOf(level);
    if (best === undefined || rank < best) best = rank;
  }
  return best === undefined ? undefined : LEVELS[best];
}

/**
 * The level to set on an upstream connection, which every session that may read the server
 * shares: the most verbose threshold among those sessions (the default for those that set
 * none), so each still gets what it asked for. Sessions that may not read the server have no
 * say, so they cannot make it talk more. Undefined when no session may read it.
 */
export function upstreamLevel(readers: Iterable<{ logLevel: LoggingLevel | undefined }>): LoggingLevel | undefined {
  const levels: LoggingLevel[] = [];
  for (const reader of readers) levels.push(thresholdOf(reader.logLevel));
  return mostVerbose(levels);
}
