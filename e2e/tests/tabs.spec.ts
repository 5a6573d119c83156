// Several terminals per page: New terminal opens another shell channel on the same SSH
// connection (the same TCP connection at sshd: $SSH_CONNECTION is equal), each tab keeps its
// own output, tabs switch by click and Ctrl+Shift+PageUp/PageDown, closing a tab ends its
// shell, and the connection ends with its last tab. Also with a V1 device, and with two tabs
// printing a lot at once (a functional check; its timing is in the bench).
import { test, expect } from '../fixtures';
import { passwordLogin } from '../pages/burrow-app';
import type { BurrowApp } from '../pages/burrow-app';
import { Tabs } from '../pages/tabs';

/** The shown terminal's `$SSH_CONNECTION` (client address and port, server address and port). */
async function sshConnection(app: BurrowApp, tag: string): Promise<string> {
  await app.terminal.run(`echo ${tag}-$((1+1)) "[$SSH_CONNECTION]"`);
  const pattern = new RegExp(`^${tag}-2 \\[([0-9.]+ \\d+ [0-9.]+ \\d+)\\]$`, 'm');
  await app.terminal.expectText(pattern);
  return (await app.terminal.text()).match(pattern)![1];
}

test('two tabs share one connection, keep their own output, and switch by click and keyboard', async ({
  app,
  tunnel,
  testUser,
  sshd,
}) => {
  await app.open();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  const tabs = new Tabs(app);
  await expect(tabs.all).toHaveCount(1);
  await expect(tabs.tab(1).getByTestId('tab-device')).toContainText(`${testUser.name}@`);
  const first = await sshConnection(app, 'first');
  await app.terminal.run('echo only-in-one-$((30+3))');
  await app.terminal.expectText(/^only-in-one-33$/m);

  const second = await tabs.open(testUser.name);
  expect(second).not.toBe(1);
  await expect(tabs.tab(second).getByTestId('tab-device')).toContainText(`${testUser.name}@`);
  // The same SSH connection: no new tunnel connection, token or login.
  expect(await sshConnection(app, 'second')).toBe(first);
  await app.terminal.run('echo only-in-two-$((40+4))');
  await app.terminal.expectText(/^only-in-two-44$/m);
  expect(await app.terminal.text()).not.toContain('only-in-one-33');
  // A program's window title names its tab (while it runs; then bash's prompt sets its own,
  // `user@host: dir`, as Debian's .bashrc does for xterm terminals).
  await app.terminal.run("printf '\\033]0;title-of-%s\\007' two; sleep 60");
  await expect(tabs.tab(second).getByTestId('tab-title')).toHaveText('title-of-two');
  await app.page.keyboard.press('Control+C');
  await expect(tabs.tab(second).getByTestId('tab-title')).toHaveText(new RegExp(`^${testUser.name}@.*: ~$`));

  await tabs.click(1);
  await app.terminal.expectText(/^only-in-one-33$/m);
  expect(await app.terminal.text()).not.toContain('only-in-two-44');

  await app.terminal.focus();
  await app.page.keyboard.press('Control+Shift+PageDown');
  await expect(tabs.tab(second)).toHaveAttribute('aria-selected', 'true');
  await app.terminal.expectText(/^only-in-two-44$/m);
  await app.page.keyboard.press('Control+Shift+PageUp');
  await expect(tabs.tab(1)).toHaveAttribute('aria-selected', 'true');
  await app.terminal.expectText(/^only-in-one-33$/m);
  // Wrapping around, and the keys never reached the shell (no escape sequence typed).
  await app.page.keyboard.press('Control+Shift+PageUp');
  await expect(tabs.tab(second)).toHaveAttribute('aria-selected', 'true');
  await app.terminal.run('echo still-two-$((5+5))');
  await app.terminal.expectText(/^still-two-10$/m);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
});

test('closing a tab ends its shell; the connection ends with its last tab', async ({
  app,
  tunnel,
  testUser,
  sshd,
}) => {
  await app.open();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  const tabs = new Tabs(app);
  const second = await tabs.open(testUser.name);
  const third = await tabs.open(testUser.name);
  await expect(tabs.all).toHaveCount(3);

  // ✕ closes a tab; the others go on.
  await tabs.close(second);
  await expect(tabs.all).toHaveCount(2);
  await expect(tabs.tab(second)).toHaveCount(0);
  // A shell that exits closes its tab too.
  await tabs.click(third);
  await app.terminal.run('exit');
  await expect(tabs.all).toHaveCount(1);
  await expect(tabs.tab(1)).toHaveAttribute('aria-selected', 'true');
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  await app.terminal.run('echo survivor-$((6+6))');
  await app.terminal.expectText(/^survivor-12$/m);

  // The last tab's ✕ ends the connection; its terminal stays with its scrollback.
  await tabs.close(1);
  await expect(app.status).toHaveAttribute('data-state', 'ended');
  await app.terminal.expectText('session closed');
  await app.terminal.expectText(/^survivor-12$/m);
  await expect(app.page.getByTestId('tab-new')).toBeDisabled();
});

test('tabs work with a V1 device (channels of one SSH connection, not tunnel connections)', async ({
  app,
  device,
  sshd,
  testUser,
}) => {
  const tunnel = await device({ format: 'V1' });
  await app.open();
  await app.login(
    passwordLogin(tunnel.sourceAccessToken, testUser, { format: 'V1' }),
    sshd.hostKeyFingerprints[0],
  );
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  const tabs = new Tabs(app);
  const first = await sshConnection(app, 'v1-first');
  const second = await tabs.open(testUser.name);
  expect(await sshConnection(app, 'v1-second')).toBe(first);
  await app.terminal.run('echo v1-tab-$((7+7))');
  await app.terminal.expectText(/^v1-tab-14$/m);
  await tabs.click(1);
  await app.terminal.run('echo v1-first-$((8+8))');
  await app.terminal.expectText(/^v1-first-16$/m);
  expect(await app.terminal.text()).not.toContain('v1-tab-14');
  await tabs.close(second);
  await expect(tabs.all).toHaveCount(1);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  expect(tunnel.agent.hasExited).toBe(false);
});

test('two tabs printing a lot at once both finish, and a key is answered meanwhile', async ({
  app,
  tunnel,
  testUser,
  sshd,
}) => {
  await app.open();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  const tabs = new Tabs(app);
  const second = await tabs.open(testUser.name);
  // About 4 MB each: more than the SSH window, so both channels' backpressure is exercised.
  const big = (tag: string) => `seq 1 600000; echo ${tag}-done-$((2+3))`;
  await tabs.click(1);
  await app.terminal.run(big('one'));
  await tabs.click(second);
  await app.terminal.run(big('two'));
  // While both print, a third tab's shell answers.
  const third = await tabs.open(testUser.name);
  await app.terminal.run('echo answered-$((5+6))');
  await app.terminal.expectText(/^answered-11$/m);
  await tabs.click(second);
  await app.terminal.expectText(/^two-done-5$/m, 120_000);
  await tabs.click(1);
  await app.terminal.expectText(/^one-done-5$/m, 120_000);
  // Nothing was lost: the last number is there right above the marker.
  await app.terminal.expectText(/^600000\none-done-5$/m);
  await tabs.close(third);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
});
