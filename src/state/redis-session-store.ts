import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { bestEffort } from '../observability/best-effort.js';
import type { BoundedCalls } from './bounded.js';
import { boundedScripts, type BoundedScriptRunner } from './bounded-script.js';
import { LuaScript, REDIS_NOW } from './lua-script.js';
import { meetsCondition, type SessionRecord, type SessionRecordCondition, type SessionRecordPatch, type SessionStore } from './shared-state.js';
import { SessionRecordSchema } from './state-schemas.js';

/*
 * Layout, under the prefix:
 *   session:<id>        a hash: `record` (the record's JSON) and `quota` (the name of its rate key's
 *                       set), expiring with the session. A hash rather than a JSON string so that
 *                       scripts find the quota set without decoding the record: Redis' cjson would
 *                       re-encode it on update, turning `[]` into `{}` and rounding long numbers.
 *   sessions            every live session id, scored by its expiry (ms, Redis' clock)
 *   sessions:key:<hash> the same for one rate key; the key is hashed because rate keys hold
 *                       anything (`principal:<id>`, `ip:<addr>`) and have no length limit.
 * The sets are swept of expired members before every count, so a replica that died without
 * removing its sessions stops holding quota places when their records expire.
 */

/** Adds `id` to a set with its expiry, and keeps the set itself until its last member expires. */
const PLACE = `
  local function place(set, expires, id)
    redis.call('ZADD', set, expires, id)
    local last = redis.call('ZRANGE', set, -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', set, last[2])
  end`;

/** KEYS: record, all, quota. ARGV: record JSON, ttl ms, maxTotal, maxPerKey, id. */
const CLAIM = new LuaScript(`${REDIS_NOW}${PLACE}
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 'total' end
  if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[4]) then return 'per-key' end
  local expires = now + tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], 'record', ARGV[1], 'quota', KEYS[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  place(KEYS[2], expires, ARGV[5])
  place(KEYS[3], expires, ARGV[5])
  return 'ok'`);

/** KEYS: record, all. ARGV: ttl ms, id. The quota set is named in the record (standalone Redis only, as is the claim). */
const TOUCH = new LuaScript(`${REDIS_NOW}${PLACE}
  local quota = redis.call('HGET', KEYS[1], 'quota')
  if not quota then
    redis.call('ZREM', KEYS[2], ARGV[2])
    return 0
  end
  local expires = now + tonumber(ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  place(KEYS[2], expires, ARGV[2])
  place(quota, expires, ARGV[2])
  return 1`);

/** KEYS: record. ARGV: the JSON read, the JSON to write. 1 written, 0 gone, -1 changed meanwhile. */
const REPLACE = new LuaScript(`
  local current = redis.call('HGET', KEYS[1], 'record')
  if not current then return 0 end
  if current ~= ARGV[1] then return -1 end
  redis.call('HSET', KEYS[1], 'record', ARGV[2])
  return 1`);

/** KEYS: record, all. ARGV: id. */
const REMOVE = new LuaScript(`
  local quota = redis.call('HGET', KEYS[1], 'quota')
  redis.call('ZREM', KEYS[2], ARGV[1])
  if not quota then return 0 end
  redis.call('ZREM', quota, ARGV[1])
  redis.call('DEL', KEYS[1])
  return 1`);

/** KEYS: a set. */
const COUNT = new LuaScript(`${REDIS_NOW}
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  return redis.call('ZCARD', KEYS[1])`);

/** Beyond this many concurrent changes to one record, an update gives up (sessions change rarely). */
const UPDATE_ATTEMPTS = 16;

/** Session records in Redis: quotas checked and taken atomically by every replica. */
export class RedisSessionStore implements SessionStore {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #bounded: BoundedCalls;
  readonly #logger: Logger;
  readonly #script: BoundedScriptRunner;

  constructor(redis: Redis, options: { prefix: string; bounded: BoundedCalls; logger: Logger }) {
    this.#redis = redis;
    this.#prefix = options.prefix;
    this.#bounded = options.bounded;
    this.#logger = options.logger;
    this.#script = boundedScripts(redis, options.bounded);
  }

  /**
   * A claim the bound gave up on may still run in Redis, later: it would hold the record and its
   * quota places for the whole `ttlMs`, and a client retrying through a slow spell would find
   * its places taken by sessions it never got. Once such a claim settles, its record is removed
   * (the id is new to this claim, so nothing else can be under it).
   */
  async claim(record: SessionRecord, ttlMs: number, limits: { maxPerKey: number; maxTotal: number }): Promise<'ok' | 'per-key' | 'total'> {
    const keys = [this.#record(record.id), this.#all(), this.#quota(record.rateKey)];
    const args = [JSON.stringify(record), ttl(ttlMs), limit(limits.maxTotal), limit(limits.maxPerKey), record.id];
    const outcome = await this.#script('session claim', CLAIM, keys, args, (unanswered) => {
      const undo = () => bestEffort(() => this.remove(record.id), this.#logger, 'remove the record of a claim that was given up on', 'warn');
      unanswered.then(undo, undo);
    });
    if (outcome !== 'ok' && outcome !== 'per-key' && outcome !== 'total') throw new Error(`unexpected claim outcome ${String(outcome)}`);
    return outcome;
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    const raw = await this.#bounded.run('session read', () => this.#redis.hget(this.#record(id), 'record'));
    if (raw === null) return undefined;
    const parsed = SessionRecordSchema.safeParse(parseJson(raw));
    if (parsed.success) return parsed.data;
    this.#logger.warn({ issues: parsed.error.issues.map((i) => i.path.join('.')) }, 'ignored a session record that does not fit its schema');
    return undefined;
  }

  async touch(id: string, ttlMs: number): Promise<boolean> {
    const touched = await this.#script('session touch', TOUCH, [this.#record(id), this.#all()], [ttl(ttlMs), id]);
    return touched === 1;
  }

  /**
   * Read, check and merge here, write back only if nobody changed the record meanwhile (else
   * again): the condition is judged on exactly what is written over.
   */
  update(id: string, patch: SessionRecordPatch, condition: SessionRecordCondition = {}): Promise<boolean> {
    return this.#modify(id, 'session update', (record) => (meetsCondition(record, condition) ? { ...record, ...patch } : undefined));
  }

  addSubscription(id: string, uri: string): Promise<boolean> {
    return this.#modify(id, 'session subscribe', (record) =>
      record.subscriptions.includes(uri) ? undefined : { ...record, subscriptions: [...record.subscriptions, uri] },
    );
  }

  removeSubscription(id: string, uri: string): Promise<boolean> {
    return this.#modify(id, 'session unsubscribe', (record) =>
      record.subscriptions.includes(uri) ? { ...record, subscriptions: record.subscriptions.filter((u) => u !== uri) } : undefined,
    );
  }

  /**
   * Reads the record, computes its next state (`undefined`: leave it), and writes that only if
   * the record is still what was read (compare-and-set), else reads again: a change computed
   * from a stale read never lands. True when written.
   */
  #modify(id: string, what: string, next: (record: SessionRecord) => SessionRecord | undefined): Promise<boolean> {
    const key = this.#record(id);
    return this.#bounded.run(what, async () => {
      for (let attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
        const current = await this.#redis.hget(key, 'record');
        if (current === null) return false;
        const changed = next(JSON.parse(current) as SessionRecord);
        if (!changed) return false;
        const replaced = await REPLACE.run(this.#redis, [key], [current, JSON.stringify(changed)]);
        if (replaced !== -1) return replaced === 1;
      }
      throw new Error(`the record changed ${UPDATE_ATTEMPTS} times during the update`);
    });
  }

  async remove(id: string): Promise<boolean> {
    const removed = await this.#script('session remove', REMOVE, [this.#record(id), this.#all()], [id]);
    return removed === 1;
  }

  async countFor(rateKey: string): Promise<number> {
    return Number(await this.#script('session count', COUNT, [this.#quota(rateKey)], []));
  }

  async count(): Promise<number> {
    return Number(await this.#script('session count', COUNT, [this.#all()], []));
  }

  #record(id: string): string {
    return `${this.#prefix}session:${id}`;
  }

  #all(): string {
    return `${this.#prefix}sessions`;
  }

  #quota(rateKey: string): string {
    return `${this.#prefix}sessions:key:${createHash('sha256').update(rateKey).digest('base64url')}`;
  }
}

/** Redis' PX takes a positive whole number of milliseconds. */
function ttl(ms: number): number {
  return Math.max(1, Math.ceil(ms));
}

/** Lua's `tonumber` does not read `Infinity` everywhere; an unlimited count is the largest exact one. */
function limit(n: number): number {
  return Number.isFinite(n) ? n : Number.MAX_SAFE_INTEGER;
}

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}
