// Playwright configuration of Burrow's benchmarks (not tests: nothing here asserts a timing).
//
// `cargo xtask bench` builds target/release/burrow, the load client and dist/, then runs this
// suite, which measures the browser app and native OpenSSH side by side and rewrites
// BENCHMARKS.md. Debian's Chromium only, one worker: the figures must not compete with each other.
import { defineConfig } from '@playwright/test';
import { CHROMIUM_LAUNCH_OPTIONS } from '../e2e/support/chromium';

export default defineConfig({
  testDir: '.',
  testMatch: ['bench.spec.ts'],
  outputDir: './test-results',
  // A figure runs several minutes of measurements; the whole run stays under ~15 minutes.
  timeout: 6 * 60_000,
  expect: { timeout: 30_000 },
  fullyParallel: false,
  retries: 0,
  workers: 1,
  reporter: [['list']],
  use: {
    browserName: 'chromium',
    headless: true,
    viewport: { width: 1200, height: 800 },
    trace: 'off',
    screenshot: 'off',
    video: 'off',
    launchOptions: CHROMIUM_LAUNCH_OPTIONS,
  },
  projects: [{ name: 'chromium' }],
});
