/**
 * `npm run conformance`: runs the suite directly and through Conflux and prints the table
 * recorded in docs/conformance.md.
 */
import { startGateway, testConfig } from '../helpers/gateway.js';
import { runSuite, startFixture, summarize } from './conformance-runner.js';

const suite = process.argv.includes('--all') ? 'all' : 'active';
const fixture = await startFixture();
let gateway: Awaited<ReturnType<typeof startGateway>> | undefined;
try {
  // The same gateway the conformance tests put in front of the fixture.
  gateway = await startGateway(testConfig({ conformance: { url: fixture.url, prefix: '' } }));
  const { url } = gateway;
  const direct = await runSuite(fixture.url, suite);
  const through = await runSuite(url, suite);
  console.log(`Suite: --suite ${suite}\n`);
  console.log(summarize(direct, through));
} finally {
  await gateway?.stop();
  await fixture.stop();
}
