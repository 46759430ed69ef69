import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { textOf, waitFor } from './gateway.js';

/** Calls of one tool made back to back while something changes underneath, to show that none of them fails. */
export interface CallLoop {
  /** Each answer's text, in order. */
  readonly answers: readonly string[];
  /** Each failure: a tool error's text or a thrown error's message. */
  readonly failures: readonly string[];
  /** The calls made so far, answered or failed. */
  calls(): number;
  /** Ends the loop once its call in progress has settled. */
  stop(): Promise<{ calls: number; failures: readonly string[] }>;
}

/** Calls `tool` over and over until stopped, keeping each answer's text and each failure (a tool error or a thrown one). */
export function callLoop(client: Client, tool: string, args: Record<string, unknown> = {}): CallLoop {
  let running = true;
  const answers: string[] = [];
  const failures: string[] = [];
  const loop = (async () => {
    while (running) {
      try {
        const result = await client.callTool({ name: tool, arguments: args });
        if (result.isError) failures.push(textOf(result));
        else answers.push(textOf(result));
      } catch (error) {
        failures.push((error as Error).message);
        // A client that fails at once (closed) must not keep the event loop from turning.
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
  })();
  const calls = () => answers.length + failures.length;
  return {
    answers,
    failures,
    calls,
    async stop() {
      running = false;
      await loop;
      return { calls: calls(), failures };
    },
  };
}

/** What one call came to: its answer's text, or its failure's (kept, so that a test reads it when it gets to it). */
export function outcomeOf(call: Promise<Record<string, unknown>>): Promise<{ isError: boolean; text: string }> {
  return call.then(
    (result) => ({ isError: result.isError === true, text: textOf(result) }),
    (error: Error) => ({ isError: true, text: `thrown: ${error.message}` }),
  );
}

/**
 * The call loops a test starts, so that its `finally` stops those still running before it closes
 * their sessions: a loop left running would go on calling through a closed client.
 */
export class CallLoops {
  readonly #started: CallLoop[] = [];

  start(client: Client, tool: string, args: Record<string, unknown> = {}): CallLoop {
    const loop = callLoop(client, tool, args);
    this.#started.push(loop);
    return loop;
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.#started.map((loop) => loop.stop()));
  }
}

/** Waits until every loop has at least `count` answers. */
export function eachAnswered(loops: readonly CallLoop[], count: number, what: string): Promise<void> {
  return waitFor(() => loops.every((loop) => loop.answers.length >= count), 30_000, what);
}

/** Waits until every loop has `more` answers beyond those it has now. */
export function eachAnsweredMore(loops: readonly CallLoop[], more: number, what: string): Promise<void> {
  const counts = loops.map((loop) => loop.answers.length);
  return waitFor(() => loops.every((loop, i) => loop.answers.length >= counts[i]! + more), 30_000, what);
}
