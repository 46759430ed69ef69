/**
 * Calls per second and latency per upstream server, from the gateway's own Prometheus metrics
 * (`mcp_tool_executions_total` and `mcp_tool_execution_duration_seconds`, labelled by the
 * exposed tool name). Pure: the page polls `/metrics` and hands each scrape here.
 */

/** Totals per server at one scrape. */
export interface ToolTotals {
  at: number;
  servers: Map<string, { calls: number; seconds: number; timed: number }>;
}

/** One point of a chart: per server, calls per second and the mean latency in milliseconds (undefined without calls). */
export interface RatePoint {
  at: number;
  values: Map<string, { perSecond: number; latencyMs: number | undefined }>;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** The label values of one sample line's `{...}` part. */
export function parseLabels(text: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  if (!text) return labels;
  for (const [, name, value] of text.matchAll(LABEL)) labels[name!] = value!.replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
  return labels;
}

/**
 * Sums the tool metrics of a scrape per server. `serverOf` maps an exposed tool name to its
 * server; calls of names it does not know (broadcasts, the search tools) count as `other`.
 */
export function toolTotals(text: string, at: number, serverOf: (tool: string) => string | undefined): ToolTotals {
  const servers = new Map<string, { calls: number; seconds: number; timed: number }>();
  const entry = (tool: string | undefined) => {
    const server = (tool && serverOf(tool)) || 'other';
    let totals = servers.get(server);
    if (!totals) servers.set(server, (totals = { calls: 0, seconds: 0, timed: 0 }));
    return totals;
  };
  for (const line of text.split('\n')) {
    if (!line.startsWith('mcp_tool_execution')) continue;
    const match = SAMPLE.exec(line);
    if (!match) continue;
    const [, name, labelText, valueText] = match;
    const value = Number(valueText);
    if (!Number.isFinite(value)) continue;
    const tool = parseLabels(labelText).tool_id;
    if (name === 'mcp_tool_executions_total') entry(tool).calls += value;
    else if (name === 'mcp_tool_execution_duration_seconds_sum') entry(tool).seconds += value;
    else if (name === 'mcp_tool_execution_duration_seconds_count') entry(tool).timed += value;
  }
  return { at, servers };
}

/** The rates between two scrapes (counters that went back, a restarted gateway, count from zero). */
export function ratesBetween(previous: ToolTotals, current: ToolTotals): RatePoint {
  const seconds = Math.max((current.at - previous.at) / 1000, 0.001);
  const values = new Map<string, { perSecond: number; latencyMs: number | undefined }>();
  for (const [server, now] of current.servers) {
    const before = previous.servers.get(server) ?? { calls: 0, seconds: 0, timed: 0 };
    const reset = now.calls < before.calls || now.timed < before.timed;
    const calls = reset ? now.calls : now.calls - before.calls;
    const timed = reset ? now.timed : now.timed - before.timed;
    const spent = reset ? now.seconds : now.seconds - before.seconds;
    values.set(server, { perSecond: calls / seconds, latencyMs: timed > 0 ? (spent / timed) * 1000 : undefined });
  }
  return { at: current.at, values };
}
