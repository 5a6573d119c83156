// Relay mode: the app is served by a `burrow serve --upstream ws://…` that relays each tunnel
// WebSocket to a second service (the worker's emulator, standing in for AWS). The relay's cookie
// helper keeps a client token for the page, so when the page's connection is cut the page dials
// again by itself with the same access token, logs in again and the shell works.
import { test, expect } from '../fixtures';
import { passwordLogin, BurrowApp } from '../pages/burrow-app';
import { NetCut } from '../support/netcut';

test('through a relay the page logs in, and after a cut it reconnects by itself with the same token', async ({
  page,
  burrow,
  tunnel,
  extraService,
  testUser,
  sshd,
  processes,
}) => {
  const relay = await extraService(['--upstream', burrow.url.replace(/^http/, 'ws')]);
  await relay.proc.waitForLine(/relay mode: \/tunnel goes to the upstream service/);
  // The page reaches the relay's tunnel endpoint over a network path the test can cut.
  const path = await NetCut.start(relay.url);
  processes.onCleanup(() => path.stop());
  const upstreamLog = burrow.proc.output().length;

  const app = new BurrowApp(page, relay.url);
  await app.open();
  await app.login(
    passwordLogin(tunnel.sourceAccessToken, testUser, { endpoint: path.url }),
    sshd.hostKeyFingerprints[0],
  );
  await app.terminal.run('echo before-$((6*7))');
  await app.terminal.expectText(/^before-42$/m);

  path.cut();
  // The page says what happened, dials again by itself and is back at a prompt.
  await app.terminal.expectText(/connection lost \(code 1006\); reconnecting in [\d.]+ s/);
  await app.terminal.expectText(
    new RegExp(`reconnecting in [\\d.]+ s ──\\n(?:.*\\n)*?${testUser.name}@[^\\n]*\\$`),
    45_000,
  );
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  await expect(app.error).toHaveCount(0);
  await expect(app.reconnectButton).toHaveCount(0);

  await app.terminal.run('echo after-$((7*7))');
  await app.terminal.expectText(/^after-49$/m);
  // The output from before the cut is still in the terminal.
  await app.terminal.expectText(/^before-42$[\s\S]*connection lost[\s\S]*^after-49$/m);

  // The upstream saw the same source token accepted twice, bound to the relay's client token
  // (the page was never given another token).
  const accepted = burrow.proc
    .output()
    .slice(upstreamLog)
    .split('\n')
    .filter((line) => /handshake accepted/.test(line) && /mode="?source/.test(line));
  expect(accepted.length).toBe(2);
  for (const line of accepted) expect(line).toMatch(/reconnectable=true/);
});
