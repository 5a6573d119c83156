// Playwright configuration of Burrow's benchmarks (not tests: nothing here asserts a timing).
//
// `cargo xtask bench` builds target/release/burrow, the load client and dist/, then runs this
// suite, which measures the browser app and native OpenSSH side by side and rewrites
// BENCHMARKS.md. Debian's Chromium only, one worker: the figures must not compete with each other.
import { defineConfig } from '@playwright/test';

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
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  projects: [{ name: 'chromium' }],
});
