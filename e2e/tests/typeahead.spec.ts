// Typeahead on a slow link: with a forwarder holding every chunk 300 ms each way between the
// device's agent and its sshd, keys typed at a shell prompt are drawn before the device echoes
// them (marked as predictions, underlined by default) and become the device's own text when the
// echo comes; a `read -s` password is never drawn; with the setting off nothing is predicted.
//
// A prediction is told from an echo by its look, not by timing: the device's echo of a plain
// prompt line is never underlined, so an underlined character in the row is one the page drew.
// A MutationObserver sees every state of the terminal's rows the browser could paint (its
// callbacks run before the next frame), so "never drawn" is checked on all of them.
import { test, expect } from '../fixtures';
import type { Page } from '@playwright/test';

const ONE_WAY_MS = 300;
const SECRET = 'kumquat9';

/** Starts recording what the terminal's rows show: underlined text, and whether `secret` appeared. */
async function watchRows(page: Page, secret: string): Promise<void> {
  await page.evaluate((secret) => {
    const seen = { underlined: [] as string[], secretShown: 0 };
    (window as unknown as { __rows: typeof seen }).__rows = seen;
    const look = () => {
      const rows = document.querySelector('[data-testid="terminal"] .xterm-rows');
      if (!rows) return;
      for (const span of rows.querySelectorAll('span[class*="xterm-underline"]')) {
        const text = span.textContent ?? '';
        if (text.trim() !== '') seen.underlined.push(text);
      }
      if ((rows.textContent ?? '').includes(secret.slice(0, 2))) seen.secretShown += 1;
    };
    new MutationObserver(look).observe(document.body, { subtree: true, childList: true, characterData: true });
  }, secret);
}

async function rows(page: Page): Promise<{ underlined: string[]; secretShown: number }> {
  return await page.evaluate(() => (window as unknown as { __rows: { underlined: string[]; secretShown: number } }).__rows);
}

async function forgetRows(page: Page): Promise<void> {
  await page.evaluate(() => {
    const seen = (window as unknown as { __rows: { underlined: string[]; secretShown: number } }).__rows;
    seen.underlined = [];
    seen.secretShown = 0;
  });
}

/** Types `text` a key at a time (as an operator does, not as a paste). */
async function keys(page: Page, text: string): Promise<void> {
  for (const key of text) await page.keyboard.press(key === ' ' ? 'Space' : key);
}

test('on a slow link, typed keys show before their echo, a hidden password never does, and off turns it off', async ({
  app,
  device,
  testUser,
  sshd,
}) => {
  test.setTimeout(120_000);
  const tunnel = await device({ oneWayDelayMs: ONE_WAY_MS });
  await app.loginWithPassword(tunnel, testUser, sshd);
  await expect(app.page.getByTestId('typeahead')).toHaveValue('auto');
  await watchRows(app.page, SECRET);
  const page = app.page;
  await app.terminal.focus();

  // The first key of a line starts an epoch: it shows with its echo, one round trip later, and
  // confirms that the device echoes. The keys after it are drawn at once, as predictions.
  await keys(page, 'e');
  await app.terminal.expectText(/[$#] e$/m);
  expect((await rows(page)).underlined).toEqual([]);
  await keys(page, 'cho typed-ahead');
  await expect.poll(async () => (await rows(page)).underlined.join('')).toContain('typed-ahead');
  // The echo confirms them: the line is the device's, with nothing left marked.
  await app.terminal.expectText(/[$#] echo typed-ahead$/m);
  await expect(page.locator('[data-testid="terminal"] .xterm-rows span[class*="xterm-underline"]')).toHaveCount(0);
  await page.keyboard.press('Enter');
  await app.terminal.expectText(/^typed-ahead$/m);

  // A password typed where the device does not echo is never drawn, not even for a frame.
  await app.terminal.run(`read -s -p 'Password: ' pw; echo; echo got-\${#pw}`);
  await app.terminal.expectText(/^Password:\s*$/m);
  await forgetRows(page);
  await keys(page, SECRET);
  await page.keyboard.press('Enter');
  await app.terminal.expectText(/^got-8$/m);
  expect(await rows(page)).toEqual({ underlined: [], secretShown: 0 });

  // Off: the same typing shows only what the device echoes.
  await app.byId('unfold').click();
  await page.getByTestId('typeahead').selectOption('off');
  await app.terminal.focus();
  await forgetRows(page);
  await keys(page, 'e');
  await app.terminal.expectText(/[$#] e$/m);
  await keys(page, 'cho not-predicted');
  await app.terminal.expectText(/[$#] echo not-predicted$/m);
  await page.keyboard.press('Enter');
  await app.terminal.expectText(/^not-predicted$/m);
  expect((await rows(page)).underlined).toEqual([]);
});
