// Logging in: with each key type pasted, with a key file, with an encrypted key (right and
// wrong passphrase), by keyboard-interactive through PAM, and with a wrong password. Every
// scenario ends with what the operator sees: the shell's prompt and a command's output, or the
// error panel's words.
import { test, expect } from '../fixtures';
import type { BurrowApp } from '../pages/burrow-app';

/** Runs a command whose output differs from its command line, and waits for that output. */
async function expectWorkingShell(app: BurrowApp, tag: string): Promise<void> {
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  await app.terminal.run(`echo ${tag}-$((40+2))`);
  await app.terminal.expectText(new RegExp(`^${tag}-42$`, 'm'));
}

for (const keyType of ['ed25519', 'ecdsa', 'rsa'] as const) {
  test(`a pasted ${keyType} key logs in`, async ({ app, tunnel, testUser, sshd }) => {
    await app.open();
    await app.login(
      {
        token: tunnel.sourceAccessToken,
        username: testUser.name,
        credential: { kind: 'key', privateKey: testUser.keys[keyType].privateKey },
      },
      sshd.hostKeyFingerprints[0],
    );
    await expectWorkingShell(app, `key-${keyType}`);
    // The sshd accepted exactly this key (not a password or another key).
    await sshd.proc.waitForLine(new RegExp(`Accepted publickey for ${testUser.name} .*${keyTypeLabel(keyType)}`));
  });
}

/** How sshd's "Accepted publickey" line names a key type. */
function keyTypeLabel(keyType: 'ed25519' | 'ecdsa' | 'rsa'): string {
  return { ed25519: 'ED25519', ecdsa: 'ECDSA', rsa: 'RSA' }[keyType];
}

test('a key chosen as a file logs in', async ({ app, tunnel, testUser, sshd }) => {
  await app.open();
  await app.fill({
    token: tunnel.sourceAccessToken,
    username: testUser.name,
    credential: { kind: 'key-file', path: testUser.keys.ecdsa.privateKeyPath },
  });
  // The file's text lands in the key field (the file input itself is emptied again).
  await expect(app.privateKey).toHaveValue(testUser.keys.ecdsa.privateKey);
  await app.connect();
  await app.acceptHostKey(sshd.hostKeyFingerprints[0]);
  await app.terminal.waitForPrompt(testUser.name);
  await expectWorkingShell(app, 'key-file');
});

test('an encrypted key with its passphrase logs in', async ({ app, tunnel, testUser, sshd }) => {
  const key = testUser.keys['ed25519-encrypted'];
  await app.open();
  await app.login(
    {
      token: tunnel.sourceAccessToken,
      username: testUser.name,
      credential: { kind: 'key', privateKey: key.privateKey, passphrase: key.passphrase },
    },
    sshd.hostKeyFingerprints[0],
  );
  await expectWorkingShell(app, 'encrypted-key');
});

test('an encrypted key with a wrong passphrase is refused clearly, and the token is not spent', async ({
  app,
  tunnel,
  testUser,
  sshd,
}) => {
  const key = testUser.keys['ed25519-encrypted'];
  await app.open();
  await app.fill({
    token: tunnel.sourceAccessToken,
    username: testUser.name,
    credential: { kind: 'key', privateKey: key.privateKey, passphrase: 'not-the-passphrase' },
  });
  await app.connect();
  await app.expectError(/passphrase does not decrypt the private key/i);
  await expect(app.byId('hostkey-dialog')).toHaveCount(0);
  await expect(app.status).not.toHaveAttribute('data-state', 'connected');

  // The key is checked before the single-use token goes out: the same token still works.
  await app.passphrase.fill(key.passphrase!);
  await app.connect();
  await app.acceptHostKey(sshd.hostKeyFingerprints[0]);
  await app.terminal.waitForPrompt(testUser.name);
  await expect(app.error).toHaveCount(0);
  await expectWorkingShell(app, 'second-try');
});

test('an encrypted key without a passphrase asks for it', async ({ app, tunnel, testUser }) => {
  await app.open();
  await app.fill({
    token: tunnel.sourceAccessToken,
    username: testUser.name,
    credential: { kind: 'key', privateKey: testUser.keys['ed25519-encrypted'].privateKey },
  });
  await app.connect();
  await app.expectError(/private key is encrypted: enter its passphrase/i);
});

test('keyboard-interactive login asks the device prompt in a dialog', async ({
  app,
  device,
  extraSshd,
  testUser,
}) => {
  // An sshd that logs in through PAM: OpenSSH then offers keyboard-interactive and takes no
  // plain passwords.
  const pamSshd = await extraSshd({ pam: true });
  const tunnel = await device({ sshd: pamSshd });

  await app.open();
  // No password and no key in the form: the device's own prompt is shown to the operator.
  await app.fill({ token: tunnel.sourceAccessToken, username: testUser.name, credential: { kind: 'none' } });
  await app.connect();
  await app.acceptHostKey(pamSshd.hostKeyFingerprints[0]);
  const dialog = app.byId('kbd-dialog');
  await expect(dialog).toBeVisible();
  await expect(app.kbdPrompts).toHaveCount(1);
  await expect(dialog).toContainText(/password/i);
  // A password prompt does not echo.
  await expect(app.kbdPrompts.first()).toHaveAttribute('type', 'password');
  await app.kbdPrompts.first().fill(testUser.password);
  await app.kbdSubmit.click();
  await expect(dialog).toHaveCount(0);
  await app.terminal.waitForPrompt(testUser.name);
  await expectWorkingShell(app, 'kbd-interactive');
  await pamSshd.proc.waitForLine(new RegExp(`Accepted keyboard-interactive/pam for ${testUser.name}`));
});

test('keyboard-interactive answers the password prompt with the form password', async ({
  app,
  device,
  extraSshd,
  testUser,
}) => {
  const pamSshd = await extraSshd({ pam: true });
  const tunnel = await device({ sshd: pamSshd });

  await app.loginWithPassword(tunnel, testUser, pamSshd);
  // A lone hidden prompt is the password prompt: it was answered without asking.
  await expect(app.byId('kbd-dialog')).toHaveCount(0);
  await expectWorkingShell(app, 'kbd-password');
  await pamSshd.proc.waitForLine(new RegExp(`Accepted keyboard-interactive/pam for ${testUser.name}`));
});

test('a wrong password is refused with a clear error', async ({ app, tunnel, testUser, sshd }) => {
  await app.open();
  await app.fill({
    token: tunnel.sourceAccessToken,
    username: testUser.name,
    credential: { kind: 'password', password: 'wrong-password' },
  });
  await app.connect();
  await app.acceptHostKey(sshd.hostKeyFingerprints[0]);
  const message = await app.expectError(/Authentication failed/);
  expect(message).toMatch(/Tried: [^.]*password/);
  expect(message).toMatch(/Check the user name and the password or key/);
  await expect(app.status).not.toHaveAttribute('data-state', 'connected');
  expect(await app.terminal.text()).not.toMatch(new RegExp(`${testUser.name}@[^\\n]*[$#]`));
});
