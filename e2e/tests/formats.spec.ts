// The destination's message format: devices that speak V1 (the AWS IoT Device Client,
// Greengrass) or V2 are reached by choosing that format in the app, with a destination agent
// that writes the same format in front of a real sshd.
import { test, expect } from '../fixtures';
import { passwordLogin } from '../pages/burrow-app';

for (const format of ['V1', 'V2'] as const) {
  test(`a ${format} device: the app set to ${format} logs in and runs a command`, async ({
    app,
    device,
    sshd,
    testUser,
  }) => {
    const tunnel = await device({ format });
    await app.open();
    await app.login(
      passwordLogin(tunnel.sourceAccessToken, testUser, { format }),
      sshd.hostKeyFingerprints[0],
    );
    await expect(app.status).toHaveAttribute('data-state', 'connected');
    await expect(app.format).toHaveValue(format);
    await app.terminal.run(`echo ${format}-device-$((20+3))`);
    await app.terminal.expectText(new RegExp(`^${format}-device-23$`, 'm'));
    expect(tunnel.agent.hasExited).toBe(false);
  });
}

// The AWS IoT Device Client, the device most fleets run, cannot run here (it needs AWS IoT
// Core); `burrow agent --format V1 --device-client-rules` keeps its rules instead: a session
// whose first stream is V2/V3 is never answered, a stream id above 2^28−1 is never answered,
// and a stream of another format drops the WebSocket for good.
test('a V1 device that keeps the Device Client rules answers ten sessions out of ten', async ({
  app,
  burrow,
  device,
  sshd,
  testUser,
}) => {
  const tunnel = await device({ format: 'V1', deviceClientRules: true });
  await app.open();
  let token = tunnel.sourceAccessToken;
  for (let session = 1; session <= 10; session++) {
    await app.fill(passwordLogin(token, testUser, { format: 'V1' }));
    await app.connect();
    // The key is pinned for this tunnel on first use.
    if (session === 1) await app.acceptHostKey(sshd.hostKeyFingerprints[0]);
    await expect(app.status).toHaveAttribute('data-state', 'connected', { timeout: 20_000 });
    await app.terminal.run(`echo session-${session}-$((40+2))`);
    await app.terminal.expectText(new RegExp(`^session-${session}-42$`, 'm'));
    await app.disconnectButton.click();
    await expect(app.status).toHaveAttribute('data-state', 'ended');
    token = (await burrow.rotateTokens(tunnel.tunnelId, 'SOURCE')).sourceAccessToken as string;
  }
  // Every stream was one it could answer, on the one WebSocket it started with.
  expect(tunnel.agent.output()).not.toMatch(/not answering/);
  expect(tunnel.agent.output().match(/connected to the tunneling service/g)).toHaveLength(1);
  expect(tunnel.agent.hasExited).toBe(false);
});

test('V3 against a device with the Device Client rules ends with the error that names the format', async ({
  app,
  device,
  testUser,
}) => {
  const tunnel = await device({ format: 'V1', deviceClientRules: true });
  await app.open();
  await app.fill(passwordLogin(tunnel.sourceAccessToken, testUser, { format: 'auto' }));
  await app.connect();
  const text = await app.expectError(/used V3/);
  expect(text).toContain('AWS IoT Device Client');
  await expect(app.status).toHaveAttribute('data-state', 'ended');
  // The device saw the stream and, as the Device Client would, did not answer it.
  expect(tunnel.agent.output()).toMatch(/Device Client rules: not answering/);
});

test('Token mode remembers the format that worked under the device name', async ({
  app,
  device,
  sshd,
  testUser,
}) => {
  const tunnel = await device({ format: 'V1' });
  const deviceName = `pump-v1-${Date.now()}`;
  await app.open();
  await app.login(
    passwordLogin(tunnel.sourceAccessToken, testUser, { format: 'V1', deviceName }),
    sshd.hostKeyFingerprints[0],
  );
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  await app.disconnectButton.click();
  await expect(app.status).toHaveAttribute('data-state', 'ended');

  // A reloaded page starts at V3; naming the device selects what worked for it.
  await app.open();
  await app.byId('mode-token').click();
  await expect(app.format).toHaveValue('V3');
  await app.byId('device-name').fill('another-device');
  await app.byId('device-name').press('Tab');
  await expect(app.format).toHaveValue('V3');
  await app.byId('device-name').fill(deviceName);
  await app.byId('device-name').press('Tab');
  await expect(app.format).toHaveValue('V1');
});
