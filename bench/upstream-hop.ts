/**
 * The CPU the gateway's upstream side spends per `tools/call`, alone: each build's Streamable
 * HTTP transport with an SDK client on it (as a connection holds them) calls the lean upstream of
 * workload 1b, in this one process, build after build in alternating order, and the process's
 * own CPU time per call is compared. Without the gateway's downstream side, the audit trail and a
 * second busy process, a difference of a few percent stands out where `ab.ts` cannot show it on a
 * shared host.
 *
 *   npx tsx bench/upstream-hop.ts --builds before=/path/a,after=/path/b [--rounds 10] [--calls 3000]
 *
 * Builds are directories with their own `dist/`, as `ab.ts` takes. A build that has
 * `dist/upstream/direct-request.js` sends a plain call with it, as `RequestForwarder` does on a
 * 2025 session; an older one through the SDK client's `request()` with a pass-through schema.
 * Prints, for 1 and 16 calls at a time, the median and lowest CPU per call (µs, user plus system).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/client';
import { z } from 'zod';
import { LEAN_UPSTREAM, start } from './processes.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const builds = option('--builds', '')
  .split(',')
  .filter(Boolean)
  .map((b) => ({ name: b.slice(0, b.indexOf('=')), dir: b.slice(b.indexOf('=') + 1) }));
if (builds.length === 0 || builds.some((b) => !b.name)) throw new Error('usage: upstream-hop.ts --builds NAME=DIR[,NAME=DIR...]');
const rounds = Number(option('--rounds', '10'));
const calls = Number(option('--calls', '3000'));

const PassThrough = z.object({}).loose();
const params = { name: 'echo', arguments: { text: 'hello' } };

interface Target {
  name: string;
  call(): Promise<unknown>;
  close(): Promise<void>;
}

async function target(name: string, dir: string, url: string): Promise<Target> {
  const module = (file: string) => import(join(dir, 'dist/upstream', file));
  const { HttpClientTransport } = await module('http-client-transport.js');
  const { OwnerChannel } = await module('owner-channel.js');
  const direct = existsSync(join(dir, 'dist/upstream/direct-request.js')) ? await module('direct-request.js') : undefined;
  const owners = new OwnerChannel();
  const transport = new HttpClientTransport(new URL(url), { headers: {}, owners });
  const client = new Client({ name: 'upstream-hop', version: '1.0.0' });
  await client.connect(transport, { prior: { kind: 'legacy' } });
  // Each call has a signal of its own, as a downstream call does.
  const call = direct
    ? () => direct.sendDirect(client, direct.directTransport(client, false), 'tools/call', params, { signal: new AbortController().signal, timeout: 60_000, owner: 'call' })
    : () => owners.offer('call', () => client.request({ method: 'tools/call', params }, PassThrough, { signal: new AbortController().signal, timeout: 60_000, allowInputRequired: true }));
  return { name, call, close: () => client.close() };
}

/** CPU µs per call for `count` calls, `concurrency` at a time. */
async function cpuPerCall(t: Target, count: number, concurrency: number): Promise<number> {
  const before = process.cpuUsage();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = 0; i < count / concurrency; i++) await t.call();
    }),
  );
  const used = process.cpuUsage(before);
  return (used.user + used.system) / count;
}

const upstream = await start(LEAN_UPSTREAM);
const targets: Target[] = [];
try {
  for (const { name, dir } of builds) targets.push(await target(name, dir, `${upstream.url}/mcp/0`));
  for (const concurrency of [1, 16]) {
    const results = new Map<string, number[]>();
    for (const t of targets) await cpuPerCall(t, calls, concurrency); // warm-up
    for (let round = 0; round < rounds; round++) {
      for (const t of round % 2 ? [...targets].reverse() : targets) results.set(t.name, [...(results.get(t.name) ?? []), await cpuPerCall(t, calls, concurrency)]);
    }
    for (const [name, values] of results) {
      const sorted = [...values].sort((a, b) => a - b);
      console.log(`${concurrency} at a time, ${name}: median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} µs CPU per call, lowest ${sorted[0]!.toFixed(1)}`);
    }
  }
} finally {
  for (const t of targets) await t.close();
  await upstream.stop();
}
