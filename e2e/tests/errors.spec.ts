// What the operator sees when a connection cannot be made or is lost: every failure ends in the
// error panel with words that name the cause, never in a spinner; and a session cut off by the
// network can be resumed with a rotated token while the terminal keeps its scrollback.
import { test, expect } from '../fixtures';
import { passwordLogin, BurrowApp, type LoginForm } from '../pages/burrow-app';
import { freePort } from '../support/process';
import { NetCut } from '../support/netcut';

/** The status line ends (no spinner left) and the form can be used again. */
async function expectEnded(app: BurrowApp): Promise<void> {
  await expect(app.status).toHaveAttribute('data-state', 'ended');
  await expect(app.connectButton).toBeEnabled();
}

/** Opens the page, connects with `form`, and returns the error panel's text once it matches. */
async function connectExpectingError(app: BurrowApp, form: LoginForm, pattern: RegExp): Promise<string> {
  await app.open();
  await app.fill(form);
  await app.connect();
  return await app.expectError(pattern);
}

test('a spent source token is refused with "already used"', async ({ app, tunnel, testUser, sshd }) => {
  await app.open();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  await app.disconnectButton.click();
  await expectEnded(app);

  // The same token, still in the form: the service refuses the second handshake.
  await app.connect();
  const text = await app.expectError(/already used/i);
  expect(text).toContain('rotate-tunnel-access-token');
  expect(text).toContain('--client-mode SOURCE');
  await expectEnded(app);
});

test('a destination token pasted as the source token is named as such', async ({ app, burrow, testUser }) => {
  const tunnel = await burrow.openTunnel(['SSH']);
  await connectExpectingError(
    app,
    passwordLogin(tunnel.destinationAccessToken, testUser),
    /not a source access token.*destination token/i,
  );
  await expectEnded(app);
});

test('a closed tunnel is reported as closed', async ({ app, burrow, testUser }) => {
  const tunnel = await burrow.openTunnel(['SSH']);
  await burrow.closeTunnel(tunnel.tunnelId);
  await connectExpectingError(
    app,
    passwordLogin(tunnel.sourceAccessToken, testUser),
    /tunnel is closed or has expired/i,
  );
  await expectEnded(app);
});

test('a tunnel without a destination agent says that no destination is connected', async ({
  app,
  burrow,
  testUser,
}) => {
  const tunnel = await burrow.openTunnel(['SSH']);
  await app.open();
  await app.fill(passwordLogin(tunnel.sourceAccessToken, testUser));
  await app.connect();
  // An SSH server speaks first: a V3 stream silent for 2 s means nobody is there, or a device
  // that does not answer V3 (the AWS IoT Device Client speaks V1), and the error says both.
  await expect(app.error).toContainText(/no destination seems to be connected/i, { timeout: 20_000 });
  await expect(app.error).toContainText(/destination token/);
  await expect(app.error).toContainText(/used V3/);
  await expect(app.error).toContainText(/AWS IoT Device Client/);
  await expectEnded(app);
});

test('an SSH server that is down behind the agent is reported', async ({ app, burrow, agent, testUser }) => {
  const tunnel = await burrow.openTunnel(['SSH']);
  // Nothing listens on this port: the agent cannot reach its SSH server and resets the stream.
  const closedPort = await freePort();
  await agent({
    endpoint: burrow.url,
    token: tunnel.destinationAccessToken,
    destinations: [`SSH=127.0.0.1:${closedPort}`],
  });
  await connectExpectingError(
    app,
    passwordLogin(tunnel.sourceAccessToken, testUser),
    /could not reach its SSH server/i,
  );
  await expectEnded(app);
});

test('a connection cut mid-session is reported, and a rotated token resumes with the scrollback kept', async ({
  app,
  burrow,
  tunnel,
  testUser,
  sshd,
  processes,
}) => {
  // The page talks to the tunnel endpoint through a forwarder that can cut the network path.
  const path = await NetCut.start(burrow.url);
  processes.onCleanup(() => path.stop());

  await app.open();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser, { endpoint: path.url }), sshd.hostKeyFingerprints[0]);
  await app.terminal.run('echo before-$((6*7))');
  await app.terminal.expectText(/^before-42$/m);

  path.cut();
  await app.expectError(/tunnel connection closed \(code 1006.*without a goodbye/i);
  await expectEnded(app);
  await expect(app.reconnectButton).toBeVisible();
  // The output from before the cut is still on the screen.
  await app.terminal.expectText(/^before-42$/m);
  await app.terminal.expectText(/── disconnected ──/);

  // The first token is spent; the operator rotates the source token and reconnects.
  const rotated = await burrow.rotateTokens(tunnel.tunnelId, 'SOURCE');
  expect(typeof rotated.sourceAccessToken).toBe('string');
  await app.token.fill(rotated.sourceAccessToken as string);
  await app.reconnectButton.click();
  // The host key is remembered from the first session: no question, straight to the shell.
  await expect(app.status).toHaveAttribute('data-state', 'connected', { timeout: 45_000 });
  await expect(app.error).toHaveCount(0);
  await app.terminal.expectText(/── reconnecting ──[\s\S]*\$/);
  await app.terminal.run('echo after-$((7*7))');
  await app.terminal.expectText(/^after-49$/m);
  // Both sessions' output share the terminal.
  await app.terminal.expectText(/^before-42$[\s\S]*── reconnecting ──[\s\S]*^after-49$/m);
});

test('a cookie helper that does not allow the page is named with the refusal', async ({
  app,
  burrow,
  tunnel,
  extraService,
  testUser,
  sshd,
}) => {
  // Another service, whose allowlist holds only its own origins, not this page's.
  const other = await extraService([]);
  const helper = `${other.url}/cookie`;
  const text = await connectExpectingError(
    app,
    passwordLogin(tunnel.sourceAccessToken, testUser, { cookieHelper: helper }),
    /does not allow this page \(CORS\)/,
  );
  expect(text).toContain(helper);
  expect(text).toMatch(/allowed origins include this page's origin/);
  await expectEnded(app);

  // The refusal came before the token was used: with the right helper the same token logs in.
  await app.cookieHelper.fill(`${burrow.url}/cookie`);
  await app.connect();
  await app.acceptHostKey(sshd.hostKeyFingerprints[0]);
  await app.terminal.waitForPrompt(testUser.name);
  await expect(app.error).toHaveCount(0);
});

test('the session machinery failing to download is said plainly, and Connect works once it can', async ({
  app,
  tunnel,
  testUser,
  sshd,
}) => {
  // The SSH code is a WebAssembly module of its own (xtask/src/split.rs), fetched on first use.
  const machinery = /-split_session\.wasm$/;
  await app.page.route(machinery, (route) => route.abort('connectionfailed'));
  const form = passwordLogin(tunnel.sourceAccessToken, testUser);
  const text = await connectExpectingError(app, form, /could not load its SSH code/i);
  expect(text).toMatch(/reload/i);
  await expectEnded(app);

  // Nothing was spent: once the module can be fetched, the same token connects.
  await app.page.unroute(machinery);
  await app.connect();
  await app.acceptHostKey(sshd.hostKeyFingerprints[0]);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
});
