import type { Redis } from 'ioredis';
import type { BoundedCalls } from './bounded.js';
import type { LuaScript } from './lua-script.js';

/** Runs a Lua script as one bounded call; `what` names the call in the error when Redis does not answer. */
export type BoundedScriptRunner = (
  what: string,
  script: LuaScript,
  keys: string[],
  args: (string | number)[],
  onUnanswered?: (call: Promise<unknown>) => void,
) => Promise<unknown>;

/** Scripts on `redis`, each within `bounded`'s time limit and cap on waiting calls (see `BoundedCalls.run`). */
export function boundedScripts(redis: Redis, bounded: BoundedCalls): BoundedScriptRunner {
  return (what, script, keys, args, onUnanswered) => bounded.run(what, () => script.run(redis, keys, args), onUnanswered);
}
