// Host keys: the first connection asks with the sshd's SHA256 fingerprint, a later connection
// to the same device (rotated token, or a new tunnel to the same thing) does not ask again, a
// changed key behind the same tunnel is refused with both fingerprints, and rejecting the key
// ends the connection before any login.
//
// The app remembers a key per device (its thing name, as OpenSSH's HostKeyAlias: the Token
// mode's Device name field, else the tunnel's thing as the cookie helper reports it); without a
// device name, per endpoint + tunnel id + service, for that tunnel only. A browser context's
// localStorage holds what was accepted, in known_hosts format with the device as the host.
import { test, expect } from '../fixtures';
import { passwordLogin, type BurrowApp } from '../pages/burrow-app';
import type { BurrowService, Tunnel } from '../support/burrow';
import type { TestUser } from '../support/sshd';

/** Opens a tunnel for the thing `thingName` with the one service `SSH`. */
async function openThingTunnel(burrow: BurrowService, thingName: string): Promise<Tunnel> {
  const { status, json } = await burrow.control('OpenTunnel', { destinationConfig: { thingName, services: ['SSH'] } });
  expect(status, JSON.stringify(json)).toBe(200);
  return json as unknown as Tunnel;
}

/** A fresh source token for `tunnelId` (the tunnel id stays the same). */
async function rotatedSourceToken(burrow: BurrowService, tunnelId: string): Promise<string> {
  const rotated = await burrow.rotateTokens(tunnelId, 'SOURCE');
  expect(typeof rotated.sourceAccessToken).toBe('string');
  return rotated.sourceAccessToken as string;
}

/** Ends the running session from the status bar and waits until it has ended. */
async function disconnect(app: BurrowApp): Promise<void> {
  await app.disconnectButton.click();
  await expect(app.status).toHaveAttribute('data-state', 'ended');
}

/** Connects with the filled form and waits for the prompt; no host-key question may come. */
async function connectWithoutQuestion(app: BurrowApp, testUser: TestUser): Promise<void> {
  await app.connect();
  // The session would wait for an answer if it asked, so reaching the prompt proves it did not.
  await app.terminal.waitForPrompt(testUser.name);
  await expect(app.byId('hostkey-dialog')).toHaveCount(0);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
}

test('first use asks with the SHA256 fingerprint; accepting connects', async ({ app, tunnel, testUser, sshd }) => {
  await app.open();
  await app.fill(passwordLogin(tunnel.sourceAccessToken, testUser));
  await app.connect();
  const dialog = app.byId('hostkey-dialog');
  await expect(dialog).toBeVisible();
  await expect(app.hostKeyFingerprint).toHaveText(sshd.hostKeyFingerprints[0]);
  expect(sshd.hostKeyFingerprints[0]).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  // The question names the key type and where the key will be remembered (this tunnel).
  await expect(dialog).toContainText('ssh-ed25519');
  await expect(dialog).toContainText(`tunnel:${tunnel.tunnelId}`);
  await expect(app.byId('hostkey-scope')).toContainText('this tunnel only');
  // Nothing logs in while the question is open.
  await expect(app.status).not.toHaveAttribute('data-state', 'connected');

  await app.hostKeyAccept.click();
  await expect(dialog).toHaveCount(0);
  await app.terminal.waitForPrompt(testUser.name);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  await app.terminal.run('echo trusted-$((40+2))');
  await app.terminal.expectText(/^trusted-42$/m);
});

test('a second connection to the same device does not ask again', async ({ app, burrow, agent, sshd, testUser }) => {
  const thing = `e2e-pump-${Date.now()}`;
  const first = await openThingTunnel(burrow, thing);
  await agent({ endpoint: burrow.url, token: first.destinationAccessToken, destinations: [`SSH=${sshd.address}`] });

  await app.open();
  await app.fill(passwordLogin(first.sourceAccessToken, testUser));
  await app.connect();
  await expect(app.byId('hostkey-dialog')).toContainText(thing);
  await expect(app.byId('hostkey-scope')).toContainText(`for the device ${thing}`);
  await app.acceptHostKey(sshd.hostKeyFingerprints[0]);
  await app.terminal.waitForPrompt(testUser.name);
  await disconnect(app);

  // The same tunnel with a rotated token, from a reloaded page: remembered.
  await app.open();
  await app.fill(passwordLogin(await rotatedSourceToken(burrow, first.tunnelId), testUser));
  await connectWithoutQuestion(app, testUser);
  await disconnect(app);

  // A new tunnel to the same thing (the device's name, not the tunnel's): remembered too.
  const second = await openThingTunnel(burrow, thing);
  expect(second.tunnelId).not.toBe(first.tunnelId);
  await agent({ endpoint: burrow.url, token: second.destinationAccessToken, destinations: [`SSH=${sshd.address}`] });
  await app.fill(passwordLogin(second.sourceAccessToken, testUser));
  await connectWithoutQuestion(app, testUser);
  await app.terminal.run('echo remembered-$((40+2))');
  await app.terminal.expectText(/^remembered-42$/m);
});

test('a changed host key behind the same tunnel is refused with both fingerprints', async ({
  app,
  burrow,
  tunnel,
  agent,
  extraSshd,
  sshd,
  testUser,
}) => {
  await app.open();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  await disconnect(app);

  // The device is replaced: the same tunnel (same id), new tokens, and behind the new
  // destination agent an sshd with other host keys.
  await tunnel.agent.stop();
  const impostor = await extraSshd({});
  const rotated = await burrow.rotateTokens(tunnel.tunnelId, 'ALL');
  await agent({
    endpoint: burrow.url,
    token: rotated.destinationAccessToken as string,
    destinations: [`SSH=${impostor.address}`],
  });
  const remembered = sshd.hostKeyFingerprints[0];
  const presented = impostor.hostKeyFingerprints[0];
  expect(presented).not.toBe(remembered);

  await app.open();
  await app.fill(passwordLogin(rotated.sourceAccessToken as string, testUser));
  await app.connect();
  const message = await app.expectError(/REMOTE HOST IDENTIFICATION HAS CHANGED/);
  expect(message).toContain(presented);
  expect(message).toContain(remembered);
  expect(message).toContain(`tunnel:${tunnel.tunnelId}`);
  expect(message).toMatch(/connection was refused/i);
  // Refused outright: no question, no login.
  await expect(app.byId('hostkey-dialog')).toHaveCount(0);
  await expect(app.status).toHaveAttribute('data-state', 'ended');
  expect(await app.terminal.text()).not.toMatch(new RegExp(`${testUser.name}@[^\\n]*[$#]`));
  expect(impostor.proc.output()).not.toMatch(/Accepted /);
});

test('rejecting the host key connects nothing and says so', async ({ app, burrow, tunnel, sshd, testUser }) => {
  await app.open();
  await app.fill(passwordLogin(tunnel.sourceAccessToken, testUser));
  await app.connect();
  await expect(app.hostKeyFingerprint).toHaveText(sshd.hostKeyFingerprints[0]);
  await app.hostKeyReject.click();

  const message = await app.expectError(/was not trusted, so the connection was closed before logging in/);
  expect(message).toContain(sshd.hostKeyFingerprints[0]);
  await expect(app.byId('hostkey-dialog')).toHaveCount(0);
  await expect(app.status).toHaveAttribute('data-state', 'ended');
  expect(await app.terminal.text()).not.toMatch(new RegExp(`${testUser.name}@[^\\n]*[$#]`));

  // A rejected key is not remembered: the next connection asks again.
  await app.fill(passwordLogin(await rotatedSourceToken(burrow, tunnel.tunnelId), testUser));
  await app.connect();
  await expect(app.hostKeyFingerprint).toHaveText(sshd.hostKeyFingerprints[0]);
  await app.hostKeyAccept.click();
  await app.terminal.waitForPrompt(testUser.name);
});

test('a Device name in Token mode pins the key to the device across tunnels without a thing', async ({
  app,
  device,
  sshd,
  testUser,
}) => {
  const name = `e2e-named-${Date.now()}`;
  const first = await device();
  await app.open();
  await app.fill(passwordLogin(first.sourceAccessToken, testUser, { deviceName: name }));
  await app.connect();
  await expect(app.byId('hostkey-scope')).toContainText(`for the device ${name}`);
  await app.acceptHostKey(sshd.hostKeyFingerprints[0]);
  await app.terminal.waitForPrompt(testUser.name);
  await disconnect(app);

  // Another tunnel (no thing, a new id) under the same device name: no question.
  const second = await device();
  await app.open();
  await app.fill(passwordLogin(second.sourceAccessToken, testUser, { deviceName: name }));
  await connectWithoutQuestion(app, testUser);
});

test('keys remembered by an older version for a thing still count, and export names the device', async ({
  app,
  burrow,
  agent,
  sshd,
  testUser,
}) => {
  const thing = `e2e-legacy-${Date.now()}`;
  const first = await openThingTunnel(burrow, thing);
  await agent({ endpoint: burrow.url, token: first.destinationAccessToken, destinations: [`SSH=${sshd.address}`] });
  await app.open();
  await app.login(passwordLogin(first.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  await disconnect(app);
  await app.page.locator('details.known-hosts > summary').click();
  await app.byId('known-hosts-export').click();
  const exported = await app.byId('known-hosts-text').inputValue();
  const line = exported.split('\n').find((l) => l.startsWith(`${thing} `));
  expect(line, exported).toBeTruthy();

  // The store as an older version wrote it: endpoint/thing:NAME/SERVICE.
  const key = (line as string).slice(thing.length + 1);
  const old = `ws://${burrow.hostPort}/thing:${thing}/SSH ${key}\n`;
  await app.page.evaluate((text) => localStorage.setItem('burrow.known_hosts', text), old);
  const second = await openThingTunnel(burrow, thing);
  await agent({ endpoint: burrow.url, token: second.destinationAccessToken, destinations: [`SSH=${sshd.address}`] });
  await app.open();
  await app.fill(passwordLogin(second.sourceAccessToken, testUser));
  await connectWithoutQuestion(app, testUser);
  await disconnect(app);
  await app.page.locator('details.known-hosts > summary').click();
  await app.byId('known-hosts-export').click();
  await expect(app.byId('known-hosts-text')).toHaveValue(new RegExp(`^${thing} ssh-ed25519 `, 'm'));
});
