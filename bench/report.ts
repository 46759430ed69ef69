import { readFile, writeFile } from 'node:fs/promises';

const START = '<!-- results:start -->';
const END = '<!-- results:end -->';

interface Figures {
  p50Ms: number;
  p99Ms: number;
  callsPerSecond: number;
  cpuMsPerCall?: number;
}

interface HopRow {
  sessions: number;
  direct: Figures;
  proxy?: Figures;
  gateway: Figures;
  gateway2026?: Figures;
  mcpHub?: Figures;
  supergateway?: Figures;
  mcpProxy?: Figures;
  addedMsProxy?: number;
  addedMsGateway?: number;
  addedMsGateway2026?: number;
  throughputProxy?: number;
  throughputGateway: number;
}

const cell = (f: Figures | undefined) => (f ? `${f.p50Ms} / ${f.p99Ms} | ${f.callsPerSecond}` : '- | -');

function hopTable(rows: HopRow[]): string[] {
  const lines = [
    '| sessions | direct p50 / p99 ms | calls/s | byte proxy p50 / p99 ms | calls/s | Conflux p50 / p99 ms | calls/s | added p50 ms: proxy / Conflux | throughput vs direct: proxy / Conflux |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const row of rows) {
    lines.push(`| ${row.sessions} | ${cell(row.direct)} | ${cell(row.proxy)} | ${cell(row.gateway)} | ${row.addedMsProxy} / ${row.addedMsGateway} | ${row.throughputProxy} / ${row.throughputGateway} |`);
  }
  return lines;
}

/** Workloads 1 and 1b against the targets: throughput at 16 sessions ≥ 0.6× direct, added p50 at 1 session ≤ 1.5× the byte proxy's. */
function targetTable(workloads: [string, HopRow[] | undefined][]): string[] {
  const lines = [
    '| upstream | throughput at 16 sessions vs direct: proxy / Conflux (target ≥ 0.6) | added p50 at 1 session ms: proxy / Conflux | Conflux over proxy (target ≤ 1.5×) |',
    '|---|---|---|---|',
  ];
  for (const [name, rows] of workloads) {
    const at16 = rows?.find((row) => row.sessions === 16);
    const at1 = rows?.find((row) => row.sessions === 1);
    if (!at16 || !at1) continue;
    const over = at1.addedMsProxy! > 0 ? `${Math.round((100 * at1.addedMsGateway!) / at1.addedMsProxy!) / 100}×` : 'n/a (the proxy added nothing)';
    lines.push(`| ${name} | ${at16.throughputProxy} / ${at16.throughputGateway} | ${at1.addedMsProxy} / ${at1.addedMsGateway} | ${over} |`);
  }
  return lines;
}

/**
 * CPU time per call of each process on the path, from /proc: unlike latency and throughput it
 * barely moves with the host's load, so it is the figure to compare runs by.
 */
function cpuTable(workloads: [string, HopRow[] | undefined][]): string[] {
  const rows = workloads.flatMap(([name, hop]) => (hop ?? []).filter((row) => row.gateway.cpuMsPerCall !== undefined).map((row) => ({ name, row })));
  if (rows.length === 0) return [];
  const ms = (f: Figures | undefined) => (f?.cpuMsPerCall === undefined ? '-' : f.cpuMsPerCall);
  const lines = [
    '#### CPU time per call',
    '',
    '| upstream | sessions | the upstream, called directly, ms | byte proxy ms | Conflux ms |',
    '|---|---|---|---|---|',
  ];
  for (const { name, row } of rows) lines.push(`| ${name} | ${row.sessions} | ${ms(row.direct)} | ${ms(row.proxy)} | ${ms(row.gateway)} |`);
  lines.push('', 'User plus system CPU of each process (all its threads) over the measured window, divided by the calls answered in it; the proxy and Conflux figures leave out the upstream behind them.', '');
  return lines;
}

/** The results as markdown tables. */
export function renderResults(result: {
  machine: Record<string, any>;
  command: string;
  compare?: { rounds: number; seconds: number; warmUpCalls: number; warmUpMaxSeconds: number };
  embeddedDatabases?: { fromTemplate: number; byInitdb: number };
  report: Record<string, any>;
}): string {
  const r = result.report;
  const m = result.machine;
  const c = result.compare;
  const lines = [
    `Measured ${String(m.date).slice(0, 10)} on ${m.cores} cores (${m.cpu}), Node ${m.node}, with \`${result.command}\`${m.loadAverage ? `; the host's load average was ${m.loadAverage.atStart} at the start and ${m.loadAverage.atEnd} at the end (other work shares it)` : ''}.`,
    'Client, gateway and upstreams share the machine.',
    ...(c
      ? [
          `In workloads 1, 1b and 2 every target is first warmed up (${c.warmUpCalls} calls from 16 sessions, or ${c.warmUpMaxSeconds} s if that comes first), then ${c.rounds > 1 ? `measured in ${c.rounds} alternating rounds of ${c.seconds} s per concurrency level (the second round in reverse order); each figure is the target's best round (the most calls per second), and every round is in \`bench/results/\`` : `measured once for ${c.seconds} s per concurrency level, the targets one after another`}.`,
        ]
      : ['Every ratio compares runs made minutes apart in the same invocation.']),
    '',
  ];
  if (r.httpHop) {
    lines.push('### 1. `tools/call` on the SDK\'s Streamable HTTP upstream', '', ...hopTable(r.httpHop as HopRow[]));
    const modern = (r.httpHop as HopRow[]).filter((row) => row.gateway2026);
    if (modern.length > 0) {
      lines.push(
        '',
        'The same calls through Conflux from a sessionless 2026-07-28 client (every request carries its own `_meta` envelope and standard headers; the gateway answers it per request from the shared catalog), against the 2025-11-25 session path above:',
        '',
        '| sessions | 2025 session p50 / p99 ms | calls/s | 2026 sessionless p50 / p99 ms | calls/s | added p50 ms vs direct: 2025 / 2026 |',
        '|---|---|---|---|---|---|',
      );
      for (const row of modern) lines.push(`| ${row.sessions} | ${cell(row.gateway)} | ${cell(row.gateway2026)} | ${row.addedMsGateway} / ${row.addedMsGateway2026} |`);
    }
    lines.push('');
  }
  if (r.leanHop) {
    lines.push(
      '### 1b. `tools/call` on the lean Streamable HTTP upstream',
      '',
      ...hopTable(r.leanHop as HopRow[]),
      '',
      'The upstream is `bench/lean-upstream.ts`: node:http and hand-written JSON-RPC, plain JSON answers, no SDK; it spends a few microseconds per call, so the hop is what these rows measure.',
      '',
    );
  }
  if (r.httpHop || r.leanHop) {
    lines.push('#### Workloads 1 and 1b against the targets', '', ...targetTable([['SDK (1)', r.httpHop], ['lean (1b)', r.leanHop]]), '');
    lines.push(...cpuTable([['SDK (1)', r.httpHop], ['lean (1b)', r.leanHop]]));
  }
  if (r.stdioHop) {
    lines.push('### 2. `tools/call` on a stdio upstream', '', '| sessions | direct stdio p50 / p99 ms | calls/s | Conflux p50 / p99 ms | calls/s | throughput vs direct |', '|---|---|---|---|---|---|');
    for (const row of r.stdioHop as HopRow[]) lines.push(`| ${row.sessions} | ${cell(row.direct)} | ${cell(row.gateway)} | ${row.throughputGateway} |`);
    lines.push('');
  }
  if (r.bigCatalog) {
    const b = r.bigCatalog;
    lines.push(`### 3. A big catalog: ${b.upstreams} upstreams × 50 tools`, '', '| | p50 ms | p99 ms |', '|---|---|---|', `| \`tools/list\` (${b.tools} tools, ${Math.round(b.bytes / 1024)} KiB)${b.listDecoded ? ', to the last byte' : ''} | ${b.list.p50Ms} | ${b.list.p99Ms} |`, ...(b.listDecoded ? [`| the same, decoded by the client | ${b.listDecoded.p50Ms} | ${b.listDecoded.p99Ms} |`] : []), `| \`conflux__search_tools\` | ${b.search.p50Ms} | ${b.search.p99Ms} |`, '');
  }
  if (r.idleSessions) {
    lines.push('### 4. Idle sessions', '', '| sessions held | initialize/s | gateway RSS MiB | RSS KiB per session | V8 heap KiB per session |', '|---|---|---|---|---|');
    for (const row of r.idleSessions) {
      const rss = row.rssKibPerSession < 0 ? 'n/a (fell)' : row.rssKibPerSession;
      lines.push(`| ${row.sessions} | ${row.initializePerSecond} | ${row.rssMiB} | ${rss} | ${row.heapKibPerSession} |`);
    }
    lines.push(
      '',
      `Each row is measured from the one before (the first from the idle gateway). RSS includes the embedded PGlite database, ${embeddedDatabase(result.embeddedDatabases)}, so the V8 heap figure is the one per session.`,
      '',
    );
  }
  if (r.broadcast) {
    const b = r.broadcast;
    lines.push(
      `### 5. Broadcast to ${b.upstreams} upstreams answering after ${b.upstreamDelayMs} ms`,
      '',
      '| the client fanning out itself p50 / p99 ms | Conflux `broadcast__echo` p50 / p99 ms | p50 over the slowest upstream |',
      '|---|---|---|',
      `| ${b.direct ? `${b.direct.p50Ms} / ${b.direct.p99Ms}` : '-'} | ${b.p50Ms} / ${b.p99Ms} | ${b.overSlowestMs} ms |`,
      '',
      'The slowest upstream is measured by the client asking all of them at once, directly, in the same run.',
      '',
    );
  }
  const stdioPeers = ((r.stdioHop ?? []) as HopRow[]).filter((row) => row.supergateway || row.mcpProxy);
  if (stdioPeers.length > 0) {
    lines.push(
      '### 7. Peer gateways on the stdio upstream (Streamable HTTP downstream)',
      '',
      '| sessions | Conflux p50 / p99 ms | calls/s | supergateway p50 / p99 ms | calls/s | mcp-proxy p50 / p99 ms | calls/s |',
      '|---|---|---|---|---|---|---|',
    );
    for (const row of stdioPeers) lines.push(`| ${row.sessions} | ${cell(row.gateway)} | ${cell(row.supergateway)} | ${cell(row.mcpProxy)} |`);
    lines.push(
      '',
      'Measured in the same alternating rounds as workload 2. supergateway (`--stateful`) starts one stdio server per session; mcp-proxy (`--server stream --no-eventStore`) and Conflux share one.',
      '',
    );
  }
  const hubRows = ((r.httpHop ?? []) as HopRow[]).filter((row) => row.mcpHub);
  if (hubRows.length > 0) {
    lines.push('### 7b. Peer gateway: mcp-hub (the SDK\'s Streamable HTTP upstream)', '', '| sessions | Conflux p50 / p99 ms | calls/s | mcp-hub p50 / p99 ms | calls/s |', '|---|---|---|---|---|');
    for (const row of hubRows) lines.push(`| ${row.sessions} | ${cell(row.gateway)} | ${cell(row.mcpHub)} |`);
    lines.push(
      '',
      'mcp-hub offers its unified endpoint over the older HTTP+SSE transport only (a POST per call, the answer on a long-lived event stream), so the client speaks that to it; its upstream is the same echo server over Streamable HTTP, measured in the same alternating rounds as workload 1.',
      '',
    );
  }
  if (r.authCost) {
    lines.push('### 8. Authentication and access rules (Streamable HTTP upstream)', '', '| sessions | `auth: none` p50 / p99 ms | calls/s | HS256 JWT p50 / p99 ms | calls/s | API key p50 / p99 ms | calls/s | added p50 ms: JWT / API key |', '|---|---|---|---|---|---|---|---|');
    for (const row of r.authCost) {
      lines.push(`| ${row.sessions} | ${row.none.p50Ms} / ${row.none.p99Ms} | ${row.none.callsPerSecond} | ${row.jwt.p50Ms} / ${row.jwt.p99Ms} | ${row.jwt.callsPerSecond} | ${row.apiKey.p50Ms} / ${row.apiKey.p99Ms} | ${row.apiKey.callsPerSecond} | ${row.addedMsJwt} / ${row.addedMsApiKey} |`);
    }
    lines.push('', 'The credential is checked and the caller\'s rights evaluated on every request; the caller here has a grant, so its tool list is a filtered (cached) view.', '');
  }
  if (r.scaleOut?.skipped) {
    lines.push('### 9. Workers and replicas (PostgreSQL and Redis)', '', `Skipped: ${r.scaleOut.skipped}.`, '');
  }
  if (r.scaleOut?.rows) {
    lines.push(
      '### 9. Workers and replicas (Streamable HTTP upstream, PostgreSQL and Redis)',
      '',
      '| sessions | `workers: 1` p50 / p99 ms | calls/s | `workers: 2` p50 / p99 ms | calls/s | 1 replica via proxy p50 / p99 ms | calls/s | 2 replicas via proxy p50 / p99 ms | calls/s | throughput: 2 workers vs 1 / 2 replicas vs 1 |',
      '|---|---|---|---|---|---|---|---|---|---|',
    );
    for (const row of r.scaleOut.rows) {
      lines.push(`| ${row.sessions} | ${cell(row.oneWorker)} | ${cell(row.twoWorkers)} | ${cell(row.oneReplicaViaProxy)} | ${cell(row.twoReplicasViaProxy)} | ${row.workersGain} / ${row.replicasGain} |`);
    }
    lines.push(
      '',
      'Every gateway shares one PostgreSQL database and one Redis; requests of one session land on any process (node:cluster hands connections to the workers in turn, the byte-level round-robin proxy alternates requests), which serves them from the session\'s shared record. On this two-core host the client, the upstream, PostgreSQL, Redis and the gateways share both cores, so a second process cannot bring a multi-core gain here: what these rows measure is the cost of sharing sessions across processes, not the capacity of a larger host.',
      '',
    );
  }
  if (r.startUp) {
    lines.push('### 6. Start-up', '', `${r.startUp.stdioUpstreams} stdio upstreams (each a Node.js process): \`/ready\` after ${r.startUp.secondsToReady} s.`, '');
  }
  return lines.join('\n');
}

/**
 * How the run's gateways got their embedded databases: each starts on a new data folder, filled
 * from the migrated template (dist/pglite-template) when it fits, created by initdb otherwise.
 */
function embeddedDatabase(made: { fromTemplate: number; byInitdb: number } | undefined): string {
  const fromTemplate = 'in a new data folder filled from the migrated template in `dist/pglite-template` (a first start from it peaks near 390 MiB)';
  const byInitdb = 'created by initdb in a new data folder (no template fitted; that takes the process to about 700 MiB, part of it returned while the first sessions open)';
  if (made && made.byInitdb === 0 && made.fromTemplate > 0) return fromTemplate;
  if (made && made.fromTemplate === 0 && made.byInitdb > 0) return byInitdb;
  return 'in a new data folder: filled from the migrated template in `dist/pglite-template` when it fits (a first start then peaks near 390 MiB), created by initdb otherwise (about 700 MiB)';
}

/** Replaces the results section of docs/benchmarks.md, keeping the text around it. */
export async function writeResults(path: string, markdown: string): Promise<void> {
  let doc: string;
  try {
    doc = await readFile(path, 'utf8');
  } catch {
    doc = `# Benchmarks\n\n${START}\n${END}\n`;
  }
  if (!doc.includes(START)) doc += `\n${START}\n${END}\n`;
  const before = doc.slice(0, doc.indexOf(START) + START.length);
  const after = doc.slice(doc.indexOf(END));
  await writeFile(path, `${before}\n${markdown}\n${after}`);
}
