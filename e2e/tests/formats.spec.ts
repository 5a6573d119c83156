// The destination's message format: devices that speak V1 (the AWS IoT Device Client,
// Greengrass) or V2 are reached by choosing that format in the app, with a destination agent
// that writes the same format in front of a real sshd.
import { test, expect } from '../fixtures';
import { passwordLogin } from '../pages/burrow-app';

for (const format of ['V1', 'V2'] as const) {
  test(`a ${format} device: the app set to ${format} logs in and runs a command`, async ({
    app,
    burrow,
    agent,
    sshd,
    testUser,
  }) => {
    const tunnel = await burrow.openTunnel(['SSH']);
    const device = await agent({
      endpoint: burrow.url,
      token: tunnel.destinationAccessToken,
      destinations: [`SSH=${sshd.address}`],
      format,
    });
    await app.open();
    await app.login(
      passwordLogin(tunnel.sourceAccessToken, testUser, { format }),
      sshd.hostKeyFingerprints[0],
    );
    await expect(app.status).toHaveAttribute('data-state', 'connected');
    await expect(app.format).toHaveValue(format);
    await app.terminal.run(`echo ${format}-device-$((20+3))`);
    await app.terminal.expectText(new RegExp(`^${format}-device-23$`, 'm'));
    expect(device.hasExited).toBe(false);
  });
}
