/**
 * Workload 9: the same plain `tools/call` on a Streamable HTTP echo upstream through one gateway
 * process (`workers: 1`), one process with two workers (node:cluster on one port), and two
 * single-worker replicas behind a byte-level round-robin proxy (against one replica behind the
 * same proxy, so that both pay its hop). Every gateway shares one PostgreSQL database and one
 * Redis, as several workers must: sessions are served by whichever process a request reaches.
 * Without PostgreSQL or Redis the workload is skipped with the reason.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { round, runLoad, Session, type LoadResult } from './load.js';
import { start, upstreams, type Running } from './processes.js';

const DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface ScaleOutRow {
  sessions: number;
  oneWorker: LoadResult;
  twoWorkers: LoadResult;
  oneReplicaViaProxy: LoadResult;
  twoReplicasViaProxy: LoadResult;
  /** Throughput of two workers over one. */
  workersGain: number;
  /** Throughput of two replicas over one, both behind the proxy. */
  replicasGain: number;
}

export type ScaleOutReport = { skipped: string } | { rows: ScaleOutRow[] };

export interface ScaleOutOptions {
  concurrency: number[];
  seconds: number;
  warmupSeconds: number;
  /** Every process started is added here, so that the caller stops what a failure left running. */
  running: Running[];
}

export async function scaleOut(options: ScaleOutOptions): Promise<ScaleOutReport> {
  const missing = await missingServices();
  if (missing) return { skipped: missing };
  const name = `conflux_bench_${randomBytes(6).toString('hex')}`;
  const prefix = `bench-${randomBytes(6).toString('hex')}:`;
  const admin = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  try {
    const database = new URL(DATABASE_URL);
    database.pathname = `/${name}`;
    const redis = new URL(REDIS_URL);
    // ioredis reads `keyPrefix` from the URL: this run's keys stay apart from anyone else's.
    redis.searchParams.set('keyPrefix', prefix);
    return { rows: await measure(options, { DATABASE_URL: database.toString(), REDIS_URL: redis.toString() }) };
  } finally {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end({ timeout: 1 });
    await deleteKeys(prefix);
  }
}

async function measure(options: ScaleOutOptions, env: Record<string, string>): Promise<ScaleOutRow[]> {
  const { concurrency, seconds, warmupSeconds, running } = options;
  const track = (r: Running) => (running.push(r), r);
  const upstream = track(await start(upstreams('http')));
  const servers = { echo: { url: `${upstream.url}/mcp/0`, prefix: '', required: true } };
  const load = (url: string) => (sessions: number) =>
    runLoad(sessions, seconds, warmupSeconds, async () => {
      const session = await Session.open(url);
      return { call: () => session.call('tools/call', { name: 'echo', arguments: { text: 'hello' } }), close: () => session.close() };
    });
  const measureAll = async (url: string) => {
    const results = new Map<number, LoadResult>();
    for (const sessions of concurrency) results.set(sessions, await load(url)(sessions));
    return results;
  };

  const single = track(await gateway(servers, { ...env, CONFLUX_WORKERS: '1' }));
  const oneWorker = await measureAll(single.url);
  await single.stop();

  const workers = track(await gateway(servers, { ...env, CONFLUX_WORKERS: '2' }));
  const twoWorkers = await measureAll(workers.url);
  await workers.stop();

  const replicas = [track(await gateway(servers, { ...env, CONFLUX_WORKERS: '1' })), track(await gateway(servers, { ...env, CONFLUX_WORKERS: '1' }))];
  const origins = replicas.map((r) => new URL(r.url).origin);
  const toOne = track(await start(['--import', 'tsx', 'bench/byte-proxy.ts', origins[0]!]));
  const toTwo = track(await start(['--import', 'tsx', 'bench/byte-proxy.ts', ...origins]));
  const oneReplica = await measureAll(`${toOne.url}/mcp`);
  const twoReplicas = await measureAll(`${toTwo.url}/mcp`);
  await Promise.all([toOne, toTwo, ...replicas, upstream].map((r) => r.stop()));

  return concurrency.map((sessions) => {
    const [a, b, c, d] = [oneWorker, twoWorkers, oneReplica, twoReplicas].map((m) => m.get(sessions)!) as [LoadResult, LoadResult, LoadResult, LoadResult];
    return {
      sessions,
      oneWorker: a,
      twoWorkers: b,
      oneReplicaViaProxy: c,
      twoReplicasViaProxy: d,
      workersGain: round(b.callsPerSecond / a.callsPerSecond, 2),
      replicasGain: round(d.callsPerSecond / c.callsPerSecond, 2),
    };
  });
}

/** `conflux serve` from the build, once every worker answers /ready. */
async function gateway(servers: Record<string, unknown>, env: Record<string, string>): Promise<Running> {
  const dir = await mkdtemp(join(tmpdir(), 'conflux-bench-scale-'));
  const config = join(dir, 'config.json');
  const settings = { port: 0, limits: { maxSessionsPerPrincipal: 20_000, maxSessions: 20_000 }, healthCheck: { intervalSeconds: 0 } };
  await writeFile(config, JSON.stringify({ gateway: settings, servers }));
  const gw = await start(['dist/cli.js', 'serve', '--config', config, '--port', '0'], { LOG_LEVEL: 'info', CONFLUX_DATA_DIR: join(dir, 'data'), ...env });
  try {
    await readyEverywhere(gw.url.replace(/\/mcp$/, '/ready'));
  } catch (error) {
    await gw.stop();
    throw error;
  }
  return gw;
}

/**
 * /ready answered 200 on enough new connections in a row that every worker has (node:cluster
 * hands new connections to the workers in turn); one process needs just one.
 */
async function readyEverywhere(url: string, inARow = 8, timeoutMs = 120_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let ready = 0;
  while (ready < inARow) {
    if (performance.now() > deadline) throw new Error(`${url} not ready on every worker in time`);
    const status = await new Promise<number>((resolve) => {
      const req = request(url, { agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(0));
      req.end();
    });
    ready = status === 200 ? ready + 1 : 0;
    if (status !== 200) await new Promise((r) => setTimeout(r, 50));
  }
}

/** Why the workload cannot run here, or undefined when PostgreSQL and Redis both answer. */
async function missingServices(): Promise<string | undefined> {
  const sql = postgres(DATABASE_URL, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
  } catch (error) {
    return `no PostgreSQL at ${redactUrl(DATABASE_URL)}: ${(error as Error).message}`;
  } finally {
    await sql.end({ timeout: 1 });
  }
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000, retryStrategy: () => null });
  let cause: Error | undefined;
  redis.on('error', (error: Error) => (cause ??= error));
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    return `no Redis at ${redactUrl(REDIS_URL)}: ${(cause ?? (error as Error)).message}`;
  } finally {
    redis.disconnect();
  }
  return undefined;
}

async function deleteKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  try {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

function redactUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}
