// The cursor: by default it does not blink, and the idle page runs no animation (a blinking
// cursor in xterm.js's DOM renderer is an endless CSS animation that makes the browser draw every
// frame). Blinking, when chosen, is a timer toggling a class, and the choice is remembered.
import { test, expect } from '../fixtures';
import { passwordLogin } from '../pages/burrow-app';

test('the idle terminal runs no animation, with or without blinking, and the choice is remembered', async ({
  app,
  tunnel,
  testUser,
  sshd,
}) => {
  await app.open();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  await app.terminal.waitForPrompt(testUser.name);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  const host = app.page.getByTestId('terminal');
  await expect(host.locator('.xterm-cursor')).toHaveCount(1);
  const animations = async () => await app.page.evaluate(() => document.getAnimations().length);
  // (The status dot pulses only while connecting.)
  await expect.poll(animations).toBe(0);
  // Connected, the form and settings are folded away; the status line shows them again.
  await expect(app.page.getByTestId('cursor-blink')).toBeHidden();
  await app.byId('unfold').click();
  await expect(app.page.getByTestId('cursor-blink')).not.toBeChecked();

  await app.page.getByTestId('cursor-blink').check();
  // The cursor goes off and on again with the timer.
  await expect(host).toHaveClass(/cursor-off/, { timeout: 3000 });
  await expect(host).not.toHaveClass(/cursor-off/, { timeout: 3000 });
  expect(await animations()).toBe(0);

  await app.page.reload();
  await expect(app.page.getByTestId('cursor-blink')).toBeChecked();
});
