// A tunnel that offers several services, with the form naming none: the page asks which one
// while the tunnel waits (its source token is already spent), and goes on with the answer.
import { test, expect } from '../fixtures';
import { passwordLogin } from '../pages/burrow-app';

test('a tunnel of two services asks which one, and connects to the one chosen', async ({
  app,
  burrow,
  agent,
  sshd,
  extraSshd,
  testUser,
}) => {
  // Two services, each in front of its own sshd: the host key shows which one was reached.
  const second = await extraSshd({});
  const tunnel = await burrow.openTunnel(['SSH', 'SSH2']);
  await agent({
    endpoint: burrow.url,
    token: tunnel.destinationAccessToken,
    destinations: [`SSH=${sshd.address}`, `SSH2=${second.address}`],
  });
  await app.open();
  await app.fill(passwordLogin(tunnel.sourceAccessToken, testUser));
  await app.connect();

  const dialog = app.page.getByTestId('service-choice');
  await expect(dialog).toBeVisible({ timeout: 20_000 });
  const options = dialog.getByTestId('service-option');
  await expect(options).toHaveText(['SSH', 'SSH2']);
  await dialog.locator('[data-service="SSH2"]').click();
  await expect(dialog).toBeHidden();

  // The second device's key, not the first's.
  expect(second.hostKeyFingerprints[0]).not.toBe(sshd.hostKeyFingerprints[0]);
  await app.acceptHostKey(second.hostKeyFingerprints[0]);
  await app.terminal.waitForPrompt(testUser.name);
  await app.terminal.run('echo chosen-$((40+2))');
  await app.terminal.expectText(/^chosen-42$/m);
});

test('giving up the service choice ends the attempt and says how to name one', async ({
  app,
  burrow,
  agent,
  sshd,
  testUser,
}) => {
  const tunnel = await burrow.openTunnel(['SSH', 'VNC']);
  await agent({
    endpoint: burrow.url,
    token: tunnel.destinationAccessToken,
    destinations: [`SSH=${sshd.address}`, `VNC=${sshd.address}`],
  });
  await app.open();
  await app.fill(passwordLogin(tunnel.sourceAccessToken, testUser));
  await app.connect();

  const dialog = app.page.getByTestId('service-choice');
  await expect(dialog).toBeVisible({ timeout: 20_000 });
  await dialog.getByTestId('service-choice-cancel').click();
  await expect(dialog).toBeHidden();
  const text = await app.expectError(/none was chosen/);
  expect(text).toContain('SSH, VNC');
  expect(text).toContain('Service id');
  await expect(app.status).toHaveAttribute('data-state', 'ended');
  await expect(app.connectButton).toBeEnabled();
});
