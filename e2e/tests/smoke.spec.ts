// Smoke test: the whole product path once. The page gets a source token, logs in to a real
// OpenSSH sshd with a password through `burrow serve` and a destination `burrow agent`, runs a
// command, and shows its output in the terminal.
import { test, expect } from '../fixtures';
import { passwordLogin } from '../pages/burrow-app';

test('password login runs a command and shows its output', async ({ app, tunnel, testUser, sshd }) => {
  await app.open();
  await app.login(
    passwordLogin(tunnel.sourceAccessToken, testUser),
    sshd.hostKeyFingerprints[0],
  );
  await expect(app.status).toContainText(/connected/i);

  // The typed command line contains `$((40+2))`, so only the shell's output can show `burrow-42`.
  await app.terminal.run('echo burrow-$((40+2))');
  await app.terminal.expectText(/^burrow-42$/m);
});
