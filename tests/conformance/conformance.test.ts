import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, testConfig, type RunningGateway } from '../helpers/gateway.js';
import { runSuite, startFixture, summarize, type RunningFixture, type ScenarioResult } from './conformance-runner.js';

describe('official MCP conformance suite (server scenarios, --suite active)', () => {
  let fixture: RunningFixture;
  let gateway: RunningGateway;
  let direct: ScenarioResult[];
  let through: ScenarioResult[];

  beforeAll(async () => {
    fixture = await startFixture();
    gateway = await startGateway(testConfig({ conformance: { url: fixture.url, prefix: '' } }));
    direct = await runSuite(fixture.url);
    through = await runSuite(gateway.url);
    console.log(summarize(direct, through));
  }, 600_000);

  afterAll(async () => {
    await gateway?.stop();
    await fixture?.stop();
  });

  it('ran every scenario both ways', () => {
    expect(direct.length).toBeGreaterThanOrEqual(30);
    expect(through.map((r) => r.scenario).sort()).toEqual(direct.map((r) => r.scenario).sort());
  });

  it('passes every scenario on the fixture itself (the baseline is sound)', () => {
    expect(direct.filter((r) => !r.passed).map((r) => r.scenario)).toEqual([]);
  });

  it('passes through the gateway every scenario that passes directly, check by check', () => {
    const byName = new Map(through.map((r) => [r.scenario, r]));
    const regressions: string[] = [];
    for (const scenario of direct.filter((r) => r.passed)) {
      const gatewayResult = byName.get(scenario.scenario);
      if (!gatewayResult?.passed) {
        const failing = gatewayResult?.checks.filter((c) => c.status !== 'SUCCESS' && c.status !== 'INFO') ?? [];
        regressions.push(`${scenario.scenario}: ${failing.map((c) => `${c.id} ${c.status} ${c.errorMessage ?? ''}`).join('; ') || 'missing'}`);
      }
      // every check that succeeded directly also succeeded through the gateway
      const succeeded = new Set(gatewayResult?.checks.filter((c) => c.status === 'SUCCESS').map((c) => c.id));
      for (const check of scenario.checks.filter((c) => c.status === 'SUCCESS')) {
        if (!succeeded.has(check.id)) regressions.push(`${scenario.scenario}/${check.id}: succeeded directly, not through the gateway`);
      }
    }
    expect(regressions).toEqual([]);
  });
});
