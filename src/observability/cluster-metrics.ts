import cluster, { type Worker } from 'node:cluster';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { z } from 'zod';

/**
 * `/metrics` with `CONFLUX_WORKERS` above 1. Workers share the port, so a scrape reaches one of
 * them, and its own counters are a part of the whole: the worker asks the primary, which
 * collects every worker's registry (prom-client's `AggregatorRegistry`, over the cluster's IPC
 * channel) and answers with their sum. Counters and histograms add up; each gauge says how in
 * its definition (`aggregator` in `metrics.ts`: an upstream is up when it is up in every
 * worker, its breaker as open as the most open one).
 */

const REQUEST = 'conflux:metrics-request';
const ANSWER = 'conflux:metrics-answer';

const Request = z.object({ type: z.literal(REQUEST), id: z.string() });
const Answer = z.object({ type: z.literal(ANSWER), id: z.string(), text: z.string().optional(), error: z.string().optional() });

/**
 * How long a worker waits for the primary's answer: beyond the 5 s prom-client gives every
 * worker to answer it, so that a worker that does not answer fails the collection there first.
 */
const ANSWER_TIMEOUT_MS = 7000;

/** In the primary: answers the workers' requests for everybody's metrics. Returns the detach. */
export function serveClusterMetrics(logger: Logger): () => void {
  const aggregator = new AggregatorRegistry();
  const onMessage = (worker: Worker, message: unknown) => {
    const request = Request.safeParse(message);
    if (!request.success) return;
    const reply = (answer: z.infer<typeof Answer>) => {
      // The asking worker may have exited meanwhile: nobody is left to tell.
      if (worker.isConnected()) worker.send(answer);
    };
    aggregator.clusterMetrics().then(
      (text) => reply({ type: ANSWER, id: request.data.id, text }),
      (error: unknown) => {
        logger.warn({ err: (error as Error).message }, 'could not collect the workers’ metrics');
        reply({ type: ANSWER, id: request.data.id, error: (error as Error).message });
      },
    );
  };
  cluster.on('message', onMessage);
  return () => cluster.off('message', onMessage);
}

/**
 * In a worker: lets the primary collect `registry`, and gives what `/metrics` answers. When the
 * primary cannot answer (a worker that does not respond, a primary going away), the scrape gets
 * this worker's own metrics, headed by a comment saying they are one worker's, rather than no
 * metrics at all.
 */
export class WorkerMetrics {
  readonly #registry: Registry;
  readonly #logger: Logger;
  readonly #waiting = new Map<string, (answer: z.infer<typeof Answer>) => void>();
  readonly #onMessage = (message: unknown) => {
    const answer = Answer.safeParse(message);
    if (answer.success) this.#waiting.get(answer.data.id)?.(answer.data);
  };

  constructor(registry: Registry, logger: Logger) {
    this.#registry = registry;
    this.#logger = logger;
    // The listener that answers the primary's collection is added by prom-client's constructor.
    new AggregatorRegistry();
    AggregatorRegistry.setRegistries([registry]);
    process.on('message', this.#onMessage);
  }

  /** Every worker's metrics, added up; this worker's alone when they cannot be had. */
  async scrape(): Promise<string> {
    const id = randomUUID();
    try {
      const answer = await new Promise<z.infer<typeof Answer>>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no answer from the primary within ${ANSWER_TIMEOUT_MS / 1000}s`)), ANSWER_TIMEOUT_MS);
        this.#waiting.set(id, (got) => {
          clearTimeout(timer);
          resolve(got);
        });
        process.send!({ type: REQUEST, id }, undefined, undefined, (error: Error | null) => {
          if (error) {
            clearTimeout(timer);
            reject(error);
          }
        });
      });
      if (answer.text !== undefined) return answer.text;
      throw new Error(answer.error ?? 'the primary gave no metrics');
    } catch (error) {
      this.#logger.warn({ err: (error as Error).message }, 'serving this worker’s metrics alone');
      return `# This worker's metrics only: collecting every worker's failed (${oneLine((error as Error).message)}).\n${await this.#registry.metrics()}`;
    } finally {
      this.#waiting.delete(id);
    }
  }

  close(): void {
    process.off('message', this.#onMessage);
  }
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').slice(0, 200);
}
