import { availableParallelism, loadavg } from 'node:os';

/** Carries the scale a run measured at its start from vitest.config.ts to its test processes (or pins it). */
export const LOAD_SCALE_VARIABLE = 'CONFLUX_TEST_LOAD_SCALE';

/** Beyond this, a test that still has not finished is stuck rather than slow. */
const MAX_SCALE = 4;

function clamped(scale: number): number {
  return Math.min(MAX_SCALE, Math.max(1, scale));
}

/**
 * How much slower than on an idle machine this run may go: the one-minute load average per core,
 * clamped to [1, 4]. The suite took 133 s on a quiet 2-core machine and 532 s (4×) at a load of
 * 12–15, where fixed timeouts failed tests that were only slow. 1 where there is no load average.
 */
export function measureLoadScale(): number {
  return clamped(loadavg()[0]! / availableParallelism());
}

/** The scale of this run as measured at its start, or pinned (1 outside a vitest run, e.g. in the conformance scripts). */
export const loadScale = clamped(Number(process.env[LOAD_SCALE_VARIABLE]) || 1);

/**
 * The run's scale, or the machine's now where that is higher: a run that starts before other
 * work does (another suite, an install) is slowed as much as one that starts after it, and
 * deadlines fixed at the start failed tests that were only slow.
 */
export function currentLoadScale(): number {
  return Math.max(loadScale, measureLoadScale());
}

/** `ms` stretched by the load scale, for deadlines that wait on real processes. */
export function scaled(ms: number): number {
  return Math.round(ms * currentLoadScale());
}
