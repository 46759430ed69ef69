import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient, startGateway, stdioFixture, testConfig, type RunningGateway } from '../helpers/gateway.js';

/** Prometheus' own checker: `PROMTOOL` names it (.ci/run installs it there), else the PATH. */
function findPromtool(): string | undefined {
  const named = process.env.PROMTOOL;
  if (named) {
    if (!existsSync(named)) throw new Error(`PROMTOOL=${named} does not exist`);
    return named;
  }
  return (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, 'promtool')).find((path) => existsSync(path));
}

/** The value of the sample `name{labels}` in an exposition, labels in any order. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(([, k, v]) => [k, v]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[3]);
  }
  return undefined;
}

describe('/metrics', () => {
  let gateway: RunningGateway;
  let origin: string;
  let text: string;

  beforeAll(async () => {
    gateway = await startGateway(testConfig({ alpha: stdioFixture('alpha') }));
    origin = new URL(gateway.url).origin;
    const client = await connectClient(gateway.url);
    try {
      await client.client.callTool({ name: 'alpha__echo', arguments: { text: 'hi' } });
    } finally {
      await client.close();
    }
    for (const path of ['/health', '/api/v1/servers/alpha', '/api/v1/servers/made-up-name', '/api/v1/no-such-route', '/no-such-page', '/']) await (await fetch(`${origin}${path}`)).text();
    text = await (await fetch(`${origin}/metrics`)).text();
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it('says which version runs on which Node.js', () => {
    expect(sample(text, 'conflux_build_info', { version: '0.1.0', node_version: process.version })).toBe(1);
  });

  it('counts and times requests by route pattern, method and status, never by the path asked for', () => {
    const count = (route: string, method: string, status: string) => sample(text, 'conflux_http_requests_total', { route, method, status });
    expect(count('/api/v1/servers/:name', 'GET', '200')).toBe(1);
    expect(count('/api/v1/servers/:name', 'GET', '404')).toBe(1);
    expect(count('/health', 'GET', '200')).toBe(1);
    expect(count('/', 'GET', '200')).toBe(1);
    // Paths no route matched share one label, whatever they were.
    expect(count('unmatched', 'GET', '404')).toBe(2);
    expect(count('/mcp', 'POST', '200')).toBeGreaterThanOrEqual(2);
    expect(text).not.toMatch(/made-up-name|no-such/);
    expect(sample(text, 'conflux_http_request_duration_seconds_count', { route: '/mcp', method: 'POST' })).toBeGreaterThanOrEqual(2);
    expect(sample(text, 'conflux_http_request_duration_seconds_bucket', { route: '/health', method: 'GET', le: '+Inf' })).toBe(1);
  });

  it('types each series as Prometheus expects: counters end in _total, nothing else does', () => {
    const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map(([, name, type]) => [name!, type!]));
    for (const name of ['conflux_audit_events_dropped_total', 'conflux_audit_refused_skipped_total', 'conflux_http_requests_total', 'conflux_config_reloads_total']) {
      expect(types.get(name), name).toBe('counter');
    }
    expect(types.get('conflux_http_request_duration_seconds')).toBe('histogram');
    for (const [name, type] of types) expect(name.endsWith('_total'), `${name} is a ${type}`).toBe(type === 'counter');
  });

  it('passes promtool check metrics when promtool is installed', () => {
    const promtool = findPromtool();
    if (!promtool) {
      // .ci/run installs it and sets PROMTOOL; elsewhere the checks above stand in for it.
      console.warn('promtool not found (set PROMTOOL): the exposition was checked without it');
      return;
    }
    const check = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.error).toBeUndefined();
    expect(`${check.stdout}${check.stderr}`.trim()).toBe('');
    expect(check.status).toBe(0);
  });
});
