// Playwright configuration of Burrow's end-to-end suite.
//
// The suite drives Debian's Chromium (never a browser downloaded by Playwright) against real
// components that the fixtures start: `burrow serve`, `burrow agent` and OpenSSH's sshd, all on
// loopback. `cargo xtask test` builds what it needs (target/release/burrow and dist/) first.
import { defineConfig } from '@playwright/test';
import { CHROMIUM_LAUNCH_OPTIONS } from './support/chromium';

export default defineConfig({
  testDir: './tests',
  outputDir: './test-results',
  // Every scenario starts real processes and a WebAssembly SSH client; give them room.
  timeout: 90_000,
  expect: { timeout: 20_000 },
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  retries: 0,
  // Two cores: one browser at a time keeps the suite stable next to sshd and burrow.
  workers: 1,
  reporter: [['list'], ['html', { outputFolder: './playwright-report', open: 'never' }]],
  use: {
    browserName: 'chromium',
    headless: true,
    viewport: { width: 1200, height: 800 },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    video: 'off',
    launchOptions: CHROMIUM_LAUNCH_OPTIONS,
  },
  projects: [{ name: 'chromium' }],
});
