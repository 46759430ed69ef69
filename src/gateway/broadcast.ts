import type { CallToolResult } from '@modelcontextprotocol/client';
import type { LimitFunction } from 'p-limit';
import { RateLimitedError } from '../limits/errors.js';
import type { DownstreamCall } from './downstream-call.js';
import { forward, type ForwardDeps } from './forward.js';
import { clientMessage } from './error-mapping.js';

export interface BroadcastDeps extends ForwardDeps {
  /** Bounds upstream calls in flight across all broadcasts. */
  limit: LimitFunction;
}

/** One server's call within a broadcast, as it ended: what the audit trail records of it. */
export interface BroadcastPart {
  server: string;
  status: 'ok' | 'error';
  error?: string | undefined;
  /** Refused before reaching the server (its rate limit). */
  refused: boolean;
  durationMs: number;
}

interface Outcome {
  server: string;
  result?: CallToolResult;
  error?: string;
}

/**
 * Runs one tool on several upstreams at once, each under its own timeout, and returns every
 * answer labelled by server. Failures (errors, timeouts, `isError` results) are listed, not
 * thrown; the broadcast itself is an error only when every server failed. `onPart` hears of
 * each server's call as it ends.
 */
export async function broadcast(
  deps: BroadcastDeps,
  tool: string,
  servers: readonly string[],
  args: Record<string, unknown>,
  call: DownstreamCall,
  onPart?: (part: BroadcastPart) => void,
): Promise<CallToolResult> {
  const started = performance.now();
  const outcomes = await Promise.all(
    servers.map((server) =>
      deps.limit(async (): Promise<Outcome> => {
        const partStarted = performance.now();
        let outcome: Outcome;
        let refused = false;
        try {
          const result = (await forward(deps, server, 'tools/call', { name: tool, arguments: args }, call)) as CallToolResult;
          outcome = result.isError ? { server, error: textOf(result) || 'the tool reported an error' } : { server, result };
        } catch (error) {
          refused = error instanceof RateLimitedError;
          // The text is in the caller's result: an unexpected error shows only its incident id.
          outcome = { server, error: clientMessage(error, deps.logger, { server, tool }) };
        }
        const status = outcome.error === undefined ? 'ok' : 'error';
        onPart?.({ server, status, error: outcome.error?.slice(0, 500), refused, durationMs: Math.round(performance.now() - partStarted) });
        return outcome;
      }),
    ),
  );
  const results: Record<string, CallToolResult> = {};
  const errors: Record<string, string> = {};
  const content: CallToolResult['content'] = [];
  for (const outcome of outcomes) {
    if (outcome.result) {
      results[outcome.server] = outcome.result;
      content.push({ type: 'text', text: `[${outcome.server}] ${textOf(outcome.result)}` });
      content.push(...outcome.result.content.filter((block) => block.type !== 'text'));
    } else {
      errors[outcome.server] = outcome.error!;
      content.push({ type: 'text', text: `[${outcome.server}] failed: ${outcome.error}` });
    }
  }
  const succeeded = Object.keys(results).length;
  const failed = outcomes.length - succeeded;
  const summary = `ran "${tool}" on ${succeeded}/${outcomes.length} servers` + (failed ? `; failed on ${Object.keys(errors).join(', ')}` : '');
  return {
    content: [{ type: 'text', text: summary }, ...content],
    structuredContent: { results, errors, total: outcomes.length, succeeded, failed, durationMs: Math.round(performance.now() - started) },
    ...(succeeded === 0 ? { isError: true } : {}),
  };
}

function textOf(result: CallToolResult): string {
  return (result.content ?? [])
    .map((block) => (block.type === 'text' ? block.text : `<${block.type}>`))
    .join('\n');
}
