// How the browser tests and the benchmark start Debian's Chromium, and collect what a page
// reports as wrong. One place, so that every run starts it the same way.
import { chromium } from 'playwright-core';

/** Debian's Chromium (never one a tool downloads), or CHROMIUM. */
export const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

/** Headless, and without background networking, which floods a closed network. */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic'];

export function launchBrowser(extraArgs = []) {
  return chromium.launch({ executablePath: chromiumPath, args: [...CHROMIUM_ARGS, ...extraArgs] });
}

/** Pushes `page`'s uncaught errors and console errors onto `problems`. */
export function collectProblems(page, problems) {
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
}
