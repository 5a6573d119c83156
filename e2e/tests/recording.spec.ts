// Session recording: a tab's output recorded as asciicast v2 and downloaded as
// `<device>-<time>.cast`, through the File System Access path (its save dialog stood in for,
// see answerSaveDialogs) and the service worker's streamed download. The file is valid
// asciicast v2, `asciinema cat` (the real player, from PyPI) reproduces the output, resizes
// are in it, and a password typed at a `read -s` prompt is not (input is never recorded).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, expect } from '../fixtures';
import { passwordLogin } from '../pages/burrow-app';
import type { BurrowApp } from '../pages/burrow-app';
import { answerSaveDialogs, savedNames, withoutFileSystemAccess } from '../pages/files';
import { Tabs, parseCast, savedText } from '../pages/tabs';

const SECRET = 'Sekrit-pw-4711';

/** What `asciinema cat` prints for the recording `text`. */
function asciinemaCat(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-cast-'));
  try {
    const file = join(dir, 'session.cast');
    writeFileSync(file, text);
    return execFileSync('asciinema', ['cat', file], { encoding: 'utf8', timeout: 30_000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * While recording (started here unless `started`), runs a command, resizes the page and answers
 * a `read -s` password prompt.
 */
async function recordSession(app: BurrowApp, started = false): Promise<void> {
  if (!started) await app.page.getByTestId('record').click();
  await expect(app.page.getByTestId('record')).toHaveText(/Stop recording/);
  await expect(app.page.getByTestId('record-note')).toContainText('Keystrokes are not recorded');
  await expect(new Tabs(app).active.locator('.rec-dot')).toHaveCount(1);
  await app.terminal.run('echo recorded-$((6+7)) "$(printf \'\\303\\251t\\303\\251\')"');
  await app.terminal.expectText(/^recorded-13 été$/m);
  const size = app.page.viewportSize()!;
  await app.page.setViewportSize({ width: size.width - 160, height: size.height - 80 });
  await app.terminal.run('echo "cols-$(tput cols)"');
  await app.terminal.expectText(/^cols-\d+$/m);
  await app.terminal.run("read -s -p 'Password: ' pw; echo; echo \"length-${#pw}\"");
  await app.terminal.expectText('Password:');
  await app.page.keyboard.type(SECRET);
  await app.page.keyboard.press('Enter');
  await app.terminal.expectText(new RegExp(`^length-${SECRET.length}$`, 'm'));
  expect(await app.terminal.text()).not.toContain(SECRET);
}

/** Checks a downloaded recording: format, resize, output through `asciinema cat`, no secret. */
function checkCast(text: string, user: string): void {
  const cast = parseCast(text);
  expect(cast.header.env?.TERM).toBe('xterm-256color');
  expect(cast.events.some(([, kind]) => kind === 'r')).toBe(true);
  const output = cast.events.filter(([, kind]) => kind === 'o').map(([, , data]) => data).join('');
  expect(output).toContain('recorded-13 été');
  expect(output).toContain(`length-${SECRET.length}`);
  expect(text).not.toContain(SECRET);
  const played = asciinemaCat(text);
  expect(played).toContain('recorded-13 été');
  expect(played).toContain(`length-${SECRET.length}`);
  expect(played).toContain(`${user}@`);
  expect(played).not.toContain(SECRET);
}

test('a recorded tab downloads as asciicast v2 that asciinema plays, without the typed password', async ({
  app,
  tunnel,
  testUser,
  sshd,
}) => {
  await answerSaveDialogs(app.page);
  await app.open();
  await expect(app.page.getByTestId('record-download')).toBeDisabled();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  await app.terminal.run('echo before-recording-$((1+1))');
  await app.terminal.expectText(/^before-recording-2$/m);

  await recordSession(app);
  await app.page.getByTestId('record').click();
  await expect(app.page.getByTestId('record')).toHaveText(/^● Record$/);
  await app.terminal.run('echo after-recording-$((2+2))');
  await app.terminal.expectText(/^after-recording-4$/m);

  await app.page.getByTestId('record-download').click();
  await expect(app.page.getByTestId('record-note')).toContainText('Recording saved as');
  const names = await savedNames(app.page);
  const name = names.find((n) => n.endsWith('.cast'));
  expect(name).toMatch(new RegExp(`^${testUser.name}@[A-Za-z0-9._@-]+-\\d{8}-\\d{6}\\.cast$`));
  const text = (await savedText(app.page, name!))!;
  checkCast(text, testUser.name);
  expect(text).not.toContain('before-recording-2');
  expect(text).not.toContain('after-recording-4');
});

test('a download started while recording streams to disk until the recording stops', async ({
  app,
  tunnel,
  testUser,
  sshd,
}) => {
  // No File System Access API: the service worker's streamed download.
  await withoutFileSystemAccess(app.page);
  await app.open();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  await app.page.getByTestId('record').click();
  await app.terminal.run('echo early-$((3+3))');
  await app.terminal.expectText(/^early-6$/m);
  const download = app.page.waitForEvent('download');
  await app.page.getByTestId('record-download').click();
  const started = await download;
  expect(started.suggestedFilename()).toMatch(/\.cast$/);
  // Recorded after the download started: it follows the recording into the file.
  await recordSession(app, true);
  await app.terminal.run('seq 1 20000 | tail -n 1');
  await app.terminal.expectText(/^20000$/m);
  await app.page.getByTestId('record').click();
  const path = await started.path();
  const text = readFileSync(path, 'utf8');
  checkCast(text, testUser.name);
  expect(text).toContain('early-6');
});
