// The set-up every browser test file shares: a real demo and a page in Debian's Chromium on it,
// started before the file's tests and stopped after them, with the page's console errors
// collected for the tests to assert on.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launchBrowser, collectProblems } from './browser.mjs';
import { startDemo, repoRoot } from './demo.mjs';

/** Where tests save screenshots and traces for review. */
export const artifacts = process.env.ARTIFACTS_DIR || join(repoRoot, 'tmp/artifacts');

/**
 * A session to start in the file's `before` (`await session.start()`, then read `demo`,
 * `browser` and `page` from it) and to stop in its `after`. `beforeClose(page)` runs first when
 * it stops, for a last screenshot.
 */
export function demoSession({ viewport = { width: 1366, height: 768 }, beforeClose } = {}) {
  const session = {
    demo: null,
    browser: null,
    page: null,
    problems: [],
    async start() {
      mkdirSync(artifacts, { recursive: true });
      session.demo = await startDemo();
      session.browser = await launchBrowser();
      session.page = await session.browser.newPage({ viewport });
      collectProblems(session.page, session.problems);
    },
    async stop() {
      if (beforeClose && session.page) await beforeClose(session.page).catch(() => {});
      await session.browser?.close();
      await session.demo?.stop();
    },
  };
  return session;
}
