import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { inject } from 'vitest';
import { buildConsole as buildConsoleInto } from '../helpers/console-build.js';
import { ROOT } from '../helpers/gateway.js';

/** Debian's Chromium (`apt-get install -y chromium`); `.ci/run` installs it. */
export const CHROMIUM = '/usr/bin/chromium';

/** Where the tests leave screenshots of the pages they drive (ignored by git). */
export const SCREENSHOTS = join(ROOT, 'tests/e2e/screenshots');

/**
 * Whether the browser tests can run. Under CI they must: a missing Chromium fails the file
 * rather than skipping it. Elsewhere they are skipped, saying why.
 */
export function chromiumAvailable(): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (process.env.CI) throw new Error(`${CHROMIUM} is required under CI for the console's browser tests (apt-get install -y chromium)`);
  console.warn(`skipping the console's browser tests: ${CHROMIUM} is missing (apt-get install -y chromium)`);
  return false;
}

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Chromium with a fresh profile; `hosts` are names resolved to 127.0.0.1 (a "foreign" site served here). */
export function launchChromium(hosts: readonly string[] = []): Promise<Browser> {
  const rules = hosts.map((h) => `MAP ${h} 127.0.0.1`).join(', ');
  return chromium.launch({ executablePath: CHROMIUM, args: [...FLAGS, ...(rules ? [`--host-resolver-rules=${rules}`] : [])], timeout: 60_000 });
}

/** The console built from the current sources into `dir`, as `npm run build` builds it into dist/console (a test that only serves it takes `builtConsole()`). */
export async function buildConsole(dir: string): Promise<void> {
  await buildConsoleInto(ROOT, dir);
}

/**
 * The console the run built from the current sources (tests/helpers/console-build-setup.ts), for
 * a gateway's `consoleDir`: shared by every test of the run, so not to be written to.
 */
export function builtConsole(): string {
  const build = inject('consoleBuild');
  if (!build) throw new Error('no console was built for this run: vitest.config.ts names tests/helpers/console-build-setup.ts as a globalSetup');
  if ('error' in build) throw new Error(`the console failed to build: ${build.error}`);
  return build.dir;
}

/** A page of a laptop-sized window that records every console error and warning and every uncaught exception. */
export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  /** `type: text` of each console error or warning, and each page error. */
  problems: string[];
  close(): Promise<void>;
}

export async function watchedPage(browser: Browser): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: { width: 1366, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') problems.push(`${message.type()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  return { page, context, problems, close: () => context.close() };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * The form controls and buttons of the page that have no accessible name (no label, no text, no
 * aria-label): each is described by its tag and id. Evaluated as text: the tests are compiled
 * without the DOM's types.
 */
export async function unnamedControls(page: Page): Promise<string[]> {
  return (await page.evaluate(`[...document.querySelectorAll('input, select, textarea, button')]
    .filter((el) => el.type !== 'hidden')
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
    .map((el) => el.tagName.toLowerCase() + '#' + el.id)`)) as string[];
}
