// How Burrow's Playwright suites (e2e/ and bench/) start Debian's Chromium: never a browser
// downloaded by Playwright, and no background traffic that could disturb tests or figures.
export const CHROMIUM_LAUNCH_OPTIONS = {
  executablePath: '/usr/bin/chromium',
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
};
