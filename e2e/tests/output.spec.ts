// A large output reaches the terminal completely and the page stays usable: `seq 1 200000`
// (about 1.3 MB) runs through the tunnel, its last lines in order and the prompt after them
// show, the page counted at least that many bytes in, and a command typed afterwards runs.
import { test, expect } from '../fixtures';
import { passwordLogin } from '../pages/burrow-app';

test('seq 1 200000 arrives completely and the page stays responsive', async ({ app, tunnel, testUser, sshd }) => {
  await app.open();
  await app.login(
    passwordLogin(tunnel.sourceAccessToken, testUser),
    sshd.hostKeyFingerprints[0],
  );

  await app.terminal.run('seq 1 200000');
  // The last lines, in order, and then the prompt: nothing was lost or reordered at the end.
  const tail = Array.from({ length: 10 }, (_, i) => String(199_991 + i)).join('\n');
  await app.terminal.expectText(new RegExp(`^${tail}\\n${testUser.name}@[^\\n]*\\$`, 'm'), 60_000);

  // All of it came through the tunnel: the page received at least the output's 1,288,895
  // bytes (more on the wire: the pty's CR before each LF, SSH framing).
  await expect.poll(async () => await app.bytesReceived(), { timeout: 10_000 }).toBeGreaterThan(1_288_895);

  // The page still answers keystrokes at once.
  await app.terminal.run('echo still-here-$((50+5))');
  await app.terminal.expectText(/^still-here-55$/m, 10_000);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
});
