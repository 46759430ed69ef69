/**
 * `npm run conformance`: runs the suite directly and through Conflux and prints the table
 * recorded in docs/conformance.md.
 */
import { parseConfig } from '../../src/config/load.js';
import { createConflux } from '../../src/conflux.js';
import { silentLogger } from '../../src/observability/logger.js';
import { runSuite, startFixture, summarize } from './conformance-runner.js';

const suite = process.argv.includes('--all') ? 'all' : 'active';
const fixture = await startFixture();
const config = parseConfig(JSON.stringify({ gateway: { port: 0 }, servers: { conformance: { url: fixture.url, prefix: '' } } }), { source: 'conformance', env: {} });
const conflux = createConflux(config, { logger: silentLogger() });
try {
  await conflux.start();
  const { url } = await conflux.listen('127.0.0.1', 0);
  await conflux.upstreams.settled(10_000);
  const direct = await runSuite(fixture.url, suite);
  const through = await runSuite(url, suite);
  console.log(`Suite: --suite ${suite}\n`);
  console.log(summarize(direct, through));
} finally {
  await conflux.stop();
  await fixture.stop();
}
