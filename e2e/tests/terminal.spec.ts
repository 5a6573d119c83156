// The terminal as an operator uses it: a full-screen program draws and leaves the screen as it
// was, UTF-8 and wide characters render, Ctrl-C interrupts, copy and paste go through the
// clipboard, resizing the window resizes the remote PTY, and Ctrl+Shift+F searches the output.
//
// Commands are written so that only the shell's output can match what a test waits for (e.g.
// `$((40+2))` on the command line, `42` in the output; octal escapes on the command line, the
// characters themselves in the output).
import { test, expect } from '../fixtures';
import { passwordLogin } from '../pages/burrow-app';
import type { BurrowApp } from '../pages/burrow-app';
import type { ReadyTunnel } from '../fixtures';
import type { Sshd, TestUser } from '../support/sshd';

/** Logs in with the password and waits for the prompt. */
async function loggedIn(app: BurrowApp, tunnel: ReadyTunnel, testUser: TestUser, sshd: Sshd): Promise<void> {
  await app.open();
  await app.login(
    passwordLogin(tunnel.sourceAccessToken, testUser),
    sshd.hostKeyFingerprints[0],
  );
  await expect(app.status).toHaveAttribute('data-state', 'connected');
}

/** Runs `stty size` and returns the rows and columns it printed. */
async function sttySize(app: BurrowApp, tag: string): Promise<{ rows: number; cols: number }> {
  await app.terminal.run(`echo ${tag}-$((1+1)) $(stty size)`);
  const pattern = new RegExp(`^${tag}-2 (\\d+) (\\d+)$`, 'm');
  await app.terminal.expectText(pattern);
  const match = (await app.terminal.text()).match(pattern)!;
  return { rows: Number(match[1]), cols: Number(match[2]) };
}

test('a full-screen program draws, quits, and the screen comes back', async ({ app, tunnel, testUser, sshd }) => {
  await loggedIn(app, tunnel, testUser, sshd);
  const file = `/tmp/burrow-e2e-vi-${process.pid}-${Date.now()}.txt`;
  await app.terminal.run(`printf 'vi-line-%s\\n' one two three > ${file}; echo before-vi-$((40+2))`);
  await app.terminal.expectText(/^before-vi-42$/m);

  await app.terminal.run(`vi ${file}`);
  // vi draws the file on the alternate screen: the shell's lines are gone, the file's are there
  // with the empty-line markers below them.
  await app.terminal.expectText(/^vi-line-one\nvi-line-two\nvi-line-three\n~/m);
  await expect.poll(async () => (await app.terminal.text()).includes('before-vi-42')).toBe(false);

  await app.terminal.type(':q!');
  await app.page.keyboard.press('Enter');
  // Back on the normal screen: the earlier output is there again, vi's screen is gone.
  await app.terminal.expectText(/^before-vi-42$/m);
  await expect.poll(async () => /^vi-line-two$/m.test(await app.terminal.text())).toBe(false);
  await app.terminal.run(`rm -f ${file}; echo after-vi-$((40+2))`);
  await app.terminal.expectText(/^after-vi-42$/m);
});

test('UTF-8 and wide characters render', async ({ app, tunnel, testUser, sshd }) => {
  await loggedIn(app, tunnel, testUser, sshd);
  // 'héllo 日本語 ✓' and two rows whose bar must line up: three wide characters take six columns.
  await app.terminal.run(
    "printf 'h\\303\\251llo \\346\\227\\245\\346\\234\\254\\350\\252\\236 \\342\\234\\223\\n" +
      "\\346\\227\\245\\346\\234\\254\\350\\252\\236|wide\\nabcdef|narrow\\n'",
  );
  await app.terminal.expectText('héllo 日本語 ✓');
  await app.terminal.expectText(/^日本語\s*\|wide$/m);
  await app.terminal.expectText(/^abcdef\|narrow$/m);

  // Where the bars are drawn on screen: the same x position in both rows.
  const barX = async (after: string) =>
    await app.page.evaluate((marker) => {
      const rows = document.querySelectorAll('[data-testid="terminal"] .xterm-rows > div');
      for (const row of Array.from(rows)) {
        // Only the output rows (the command line contains the markers too).
        const text = (row.textContent ?? '').replace(/\u00a0/g, ' ').trim();
        if (!new RegExp(`^\\S+ *\\|${marker}$`).test(text)) continue;
        const walker = document.createTreeWalker(row, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
          const index = (node.textContent ?? '').indexOf('|');
          if (index < 0) continue;
          const range = document.createRange();
          range.setStart(node, index);
          range.setEnd(node, index + 1);
          return range.getBoundingClientRect().left;
        }
      }
      return null;
    }, after);
  const wide = await barX('wide');
  const narrow = await barX('narrow');
  expect(wide).not.toBeNull();
  expect(narrow).not.toBeNull();
  expect(Math.abs(wide! - narrow!)).toBeLessThan(2);
});

test('Ctrl-C interrupts a running command', async ({ app, tunnel, testUser, sshd }) => {
  await loggedIn(app, tunnel, testUser, sshd);
  await app.terminal.run('sleep 100');
  // Let sleep start (the shell has echoed the line and is waiting for it).
  await app.terminal.expectText(/\$ sleep 100\n/);
  await app.page.waitForTimeout(500);
  const started = Date.now();
  await app.page.keyboard.press('Control+C');
  await app.terminal.expectText(/\^C/, 5_000);
  // Typed ahead of a running sleep, this line would wait 100 s; it runs at once.
  await app.terminal.run('echo interrupted-$((40+2))');
  await app.terminal.expectText(/^interrupted-42$/m, 10_000);
  expect(Date.now() - started).toBeLessThan(10_000);
});

test('copy a selection and paste it back into the shell', async ({ app, tunnel, testUser, sshd, context, burrow }) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: burrow.url });
  await loggedIn(app, tunnel, testUser, sshd);
  await app.terminal.run('echo copy-me-$((40+2))');
  await app.terminal.expectText(/^copy-me-42$/m);

  // Select the output word with a double click on it, then Ctrl+Shift+C copies the selection.
  // Where the word's fourth character is drawn, measured on the row's own text.
  const point = await app.page.evaluate(() => {
    const rows = document.querySelectorAll('[data-testid="terminal"] .xterm-rows > div');
    for (const row of Array.from(rows)) {
      if ((row.textContent ?? '').replace(/\u00a0/g, ' ').trim() !== 'copy-me-42') continue;
      const walker = document.createTreeWalker(row, NodeFilter.SHOW_TEXT);
      let skip = (row.textContent ?? '').indexOf('c') + 3;
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const length = node.textContent?.length ?? 0;
        if (skip >= length) {
          skip -= length;
          continue;
        }
        const range = document.createRange();
        range.setStart(node, skip);
        range.setEnd(node, skip + 1);
        const rect = range.getBoundingClientRect();
        return { x: rect.left + rect.width / 2, y: rect.top + rect.height / 2 };
      }
    }
    return null;
  });
  expect(point).not.toBeNull();
  await app.page.mouse.dblclick(point!.x, point!.y);
  await app.page.keyboard.press('Control+Shift+C');
  await expect.poll(async () => await app.page.evaluate(() => navigator.clipboard.readText())).toBe('copy-me-42');

  // Paste: the clipboard's text goes to the shell as if typed.
  await app.terminal.type('echo pasted:');
  await app.page.keyboard.press('Control+Shift+V');
  await app.page.keyboard.press('Enter');
  await app.terminal.expectText(/^pasted:copy-me-42$/m);
});

test('resizing the window resizes the remote terminal', async ({ app, tunnel, testUser, sshd }) => {
  await loggedIn(app, tunnel, testUser, sshd);
  const rowsShown = async () =>
    await app.page.evaluate(() => document.querySelectorAll('[data-testid="terminal"] .xterm-rows > div').length);

  const before = await sttySize(app, 'size-before');
  expect(before.rows).toBe(await rowsShown());

  const viewport = app.page.viewportSize()!;
  await app.page.setViewportSize({ width: Math.round(viewport.width * 0.6), height: Math.round(viewport.height * 0.75) });
  // Wait until the terminal has refitted to the smaller window.
  await expect.poll(rowsShown).toBeLessThan(before.rows);
  const after = await sttySize(app, 'size-after');
  expect(after.rows).toBe(await rowsShown());
  expect(after.rows).toBeLessThan(before.rows);
  expect(after.cols).toBeLessThan(before.cols);
});

test('Ctrl+Shift+F searches the terminal and says when nothing matches', async ({ app, tunnel, testUser, sshd }) => {
  await loggedIn(app, tunnel, testUser, sshd);
  await app.terminal.run('echo needle-$((40+2))');
  await app.terminal.expectText(/^needle-42$/m);
  await app.terminal.focus();
  await app.page.keyboard.press('Control+Shift+F');
  const search = app.page.getByTestId('search');
  await expect(search).toBeVisible();
  await expect(search).toBeFocused();

  // A word the terminal does not show is marked as a miss.
  await search.fill('haystack-without-needle');
  await search.press('Enter');
  await expect(search).toHaveClass(/\bmiss\b/);
  // Only the output has `needle-42` (the command line shows `$((40+2))`): found, so the mark goes.
  await search.fill('needle-42');
  await search.press('Enter');
  await expect(search).not.toHaveClass(/\bmiss\b/);

  // Escape closes the box and gives the keyboard back to the terminal.
  await search.press('Escape');
  await expect(search).toBeHidden();
  await app.page.keyboard.type('echo back-$((40+2))');
  await app.page.keyboard.press('Enter');
  await app.terminal.expectText(/^back-42$/m);
});
