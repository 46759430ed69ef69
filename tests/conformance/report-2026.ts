/**
 * `npx tsx tests/conformance/report-2026.ts`: runs the 0.2.0-alpha.12 suite's requirement sets
 * (2025-11-25 and 2026-07-28) against the v2 fixture directly and through Conflux (`prefix: ""`)
 * and prints the tables recorded in docs/conformance.md. `--requirements 2026-07-28` runs one set.
 */
import { startGateway, testConfig } from '../helpers/gateway.js';
import { FIXTURE_V2, REQUIREMENT_SETS, runRequirements, summarizeRequirements, type RequirementSet } from './conformance-2026-runner.js';
import { startFixture } from './conformance-runner.js';

const flag = process.argv.indexOf('--requirements');
const only = flag >= 0 ? process.argv[flag + 1] : undefined;
const sets = REQUIREMENT_SETS.filter((set) => only === undefined || set === only);
if (sets.length === 0) throw new Error(`Unknown requirement set ${only}; expected one of ${REQUIREMENT_SETS.join(', ')}`);

const fixture = await startFixture(FIXTURE_V2);
let gateway: Awaited<ReturnType<typeof startGateway>> | undefined;
try {
  // The same gateway the conformance tests put in front of the fixture.
  gateway = await startGateway(testConfig({ conformance: { url: fixture.url, prefix: '' } }));
  const { url } = gateway;
  for (const set of sets as RequirementSet[]) {
    const started = Date.now();
    const direct = await runRequirements(fixture.url, set);
    const directMs = Date.now() - started;
    const through = await runRequirements(url, set);
    console.log(summarizeRequirements(set, direct, through));
    console.log(`\n(direct ${(directMs / 1000).toFixed(1)} s, through Conflux ${((Date.now() - started - directMs) / 1000).toFixed(1)} s)\n`);
  }
} finally {
  await gateway?.stop();
  await fixture.stop();
}
