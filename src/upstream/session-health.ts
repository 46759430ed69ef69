import type { Client } from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import type { CircuitBreaker } from './circuit-breaker.js';
import { describeError } from './failure-classification.js';
import { HealthMonitor } from './health-monitor.js';

export interface HealthPolicy {
  breaker: { failureThreshold: number; cooldownMs: number };
  /** 0 disables pings. */
  pingIntervalMs: number;
  pingTimeoutMs: number;
  pingFailureThreshold: number;
}

/**
 * Starts watching one live upstream session: its pings feed `breaker`, and `onDead` runs once
 * too many in a row went unanswered. A 2026-07-28 session has no ping: `server/discover` is
 * the cheapest request every such server answers.
 */
export function watchSession(
  client: Client,
  policy: HealthPolicy,
  breaker: CircuitBreaker,
  handlers: { onChange: () => void; onDead: (reason: string) => void; logger: Logger },
): HealthMonitor {
  const modern = client.getProtocolEra() === 'modern';
  const monitor = new HealthMonitor({
    intervalMs: policy.pingIntervalMs,
    timeoutMs: policy.pingTimeoutMs,
    failureThreshold: policy.pingFailureThreshold,
    ping: (timeout) => (modern ? client.discover({ timeout }) : client.ping({ timeout })),
    breaker,
    onChange: handlers.onChange,
    onPingFailed: (failures, error) => handlers.logger.warn({ failures, err: describeError(error) }, 'upstream ping failed'),
    onDead: handlers.onDead,
  });
  monitor.start();
  return monitor;
}
