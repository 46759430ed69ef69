import { readFile, writeFile } from 'node:fs/promises';

const START = '<!-- results:start -->';
const END = '<!-- results:end -->';

interface HopRow {
  sessions: number;
  direct: { p50Ms: number; p99Ms: number; callsPerSecond: number };
  proxy?: { p50Ms: number; p99Ms: number; callsPerSecond: number };
  gateway: { p50Ms: number; p99Ms: number; callsPerSecond: number };
  gateway2026?: { p50Ms: number; p99Ms: number; callsPerSecond: number };
  addedMsProxy?: number;
  addedMsGateway?: number;
  addedMsGateway2026?: number;
  throughputProxy?: number;
  throughputGateway: number;
}

/** The results as markdown tables. */
export function renderResults(result: { machine: Record<string, unknown>; command: string; report: Record<string, any> }): string {
  const r = result.report;
  const lines = [
    `Measured ${String(result.machine.date).slice(0, 10)} on ${result.machine.cores} cores (${result.machine.cpu}), Node ${result.machine.node}, with \`${result.command}\`.`,
    'Client, gateway and upstreams share the machine; every ratio compares runs made minutes apart in the same invocation.',
    '',
  ];
  if (r.httpHop) {
    lines.push('### 1. `tools/call` on a Streamable HTTP upstream', '', '| sessions | direct p50 / p99 ms | calls/s | byte proxy p50 / p99 ms | calls/s | Conflux p50 / p99 ms | calls/s | added p50 ms: proxy / Conflux | throughput vs direct: proxy / Conflux |', '|---|---|---|---|---|---|---|---|---|');
    for (const row of r.httpHop as HopRow[]) {
      lines.push(`| ${row.sessions} | ${row.direct.p50Ms} / ${row.direct.p99Ms} | ${row.direct.callsPerSecond} | ${row.proxy!.p50Ms} / ${row.proxy!.p99Ms} | ${row.proxy!.callsPerSecond} | ${row.gateway.p50Ms} / ${row.gateway.p99Ms} | ${row.gateway.callsPerSecond} | ${row.addedMsProxy} / ${row.addedMsGateway} | ${row.throughputProxy} / ${row.throughputGateway} |`);
    }
    const modern = (r.httpHop as HopRow[]).filter((row) => row.gateway2026);
    if (modern.length > 0) {
      lines.push(
        '',
        'The same calls through Conflux from a sessionless 2026-07-28 client (every request carries its own `_meta` envelope and standard headers; the gateway answers it per request from the shared catalog), against the 2025-11-25 session path above:',
        '',
        '| sessions | 2025 session p50 / p99 ms | calls/s | 2026 sessionless p50 / p99 ms | calls/s | added p50 ms vs direct: 2025 / 2026 |',
        '|---|---|---|---|---|---|',
      );
      for (const row of modern) {
        lines.push(`| ${row.sessions} | ${row.gateway.p50Ms} / ${row.gateway.p99Ms} | ${row.gateway.callsPerSecond} | ${row.gateway2026!.p50Ms} / ${row.gateway2026!.p99Ms} | ${row.gateway2026!.callsPerSecond} | ${row.addedMsGateway} / ${row.addedMsGateway2026} |`);
      }
    }
    lines.push('');
  }
  if (r.stdioHop) {
    lines.push('### 2. `tools/call` on a stdio upstream', '', '| sessions | direct stdio p50 / p99 ms | calls/s | Conflux p50 / p99 ms | calls/s | throughput vs direct |', '|---|---|---|---|---|---|');
    for (const row of r.stdioHop as HopRow[]) {
      lines.push(`| ${row.sessions} | ${row.direct.p50Ms} / ${row.direct.p99Ms} | ${row.direct.callsPerSecond} | ${row.gateway.p50Ms} / ${row.gateway.p99Ms} | ${row.gateway.callsPerSecond} | ${row.throughputGateway} |`);
    }
    lines.push('');
  }
  if (r.bigCatalog) {
    const b = r.bigCatalog;
    lines.push(`### 3. A big catalog: ${b.upstreams} upstreams × 50 tools`, '', '| | p50 ms | p99 ms |', '|---|---|---|', `| \`tools/list\` (${b.tools} tools, ${Math.round(b.bytes / 1024)} KiB) | ${b.list.p50Ms} | ${b.list.p99Ms} |`, `| \`conflux__search_tools\` | ${b.search.p50Ms} | ${b.search.p99Ms} |`, '');
  }
  if (r.idleSessions) {
    lines.push('### 4. Idle sessions', '', '| sessions held | initialize/s | gateway RSS MiB | RSS KiB per session | V8 heap KiB per session |', '|---|---|---|---|---|');
    for (const row of r.idleSessions) {
      const rss = row.rssKibPerSession < 0 ? 'n/a (fell)' : row.rssKibPerSession;
      lines.push(`| ${row.sessions} | ${row.initializePerSecond} | ${row.rssMiB} | ${rss} | ${row.heapKibPerSession} |`);
    }
    lines.push(
      '',
      'Each row is measured from the one before (the first from the idle gateway). RSS includes the embedded PGlite database, created afresh for the run (about 700 MiB, part of it returned while the first sessions open), so the V8 heap figure is the one per session.',
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
  if (r.peers?.supergateway) {
    lines.push('### 7. Peer gateway: supergateway (stdio upstream, Streamable HTTP, stateful)', '', '| sessions | supergateway p50 / p99 ms | calls/s | Conflux p50 / p99 ms | calls/s |', '|---|---|---|---|---|');
    for (const row of r.peers.supergateway) {
      const c = row.conflux;
      lines.push(`| ${row.sessions} | ${row.supergateway.p50Ms} / ${row.supergateway.p99Ms} | ${row.supergateway.callsPerSecond} | ${c ? `${c.p50Ms} / ${c.p99Ms}` : '-'} | ${c ? c.callsPerSecond : '-'} |`);
    }
    lines.push('', 'supergateway starts one stdio server per session; Conflux shares one. The Conflux column is workload 2 of the same run.', '');
  }
  if (r.peers?.mcpHub) {
    lines.push('### 7b. Peer gateway: mcp-hub (Streamable HTTP upstream)', '', '| sessions | mcp-hub p50 / p99 ms | calls/s | Conflux p50 / p99 ms | calls/s |', '|---|---|---|---|---|');
    for (const row of r.peers.mcpHub) {
      const c = row.conflux;
      lines.push(`| ${row.sessions} | ${row.mcpHub.p50Ms} / ${row.mcpHub.p99Ms} | ${row.mcpHub.callsPerSecond} | ${c ? `${c.p50Ms} / ${c.p99Ms}` : '-'} | ${c ? c.callsPerSecond : '-'} |`);
    }
    lines.push(
      '',
      'mcp-hub offers its unified endpoint over the older HTTP+SSE transport only (a POST per call, the answer on a long-lived event stream), so the client speaks that to it; its upstream is the same echo server over Streamable HTTP. The Conflux column is workload 1 of the same run.',
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
    const cell = (l: { p50Ms: number; p99Ms: number; callsPerSecond: number }) => `${l.p50Ms} / ${l.p99Ms} | ${l.callsPerSecond}`;
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
