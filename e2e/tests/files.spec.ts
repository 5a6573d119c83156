// The Files panel over SFTP on the shell's own connection, against the fixture's real OpenSSH
// sshd with its sftp-server: 50 MB each way checked by sha256, a drop onto the terminal landing
// in the directory shown, no silent overwrite, a cancelled upload leaving nothing that looks
// complete, permission and missing-directory errors, a device without SFTP, and the shell
// echoing keystrokes while a 50 MB download runs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test, expect } from '../fixtures';
import { BurrowApp, passwordLogin } from '../pages/burrow-app';
import {
  FilesPanel,
  answerSaveDialogs,
  deviceDir,
  deviceHome,
  giveToTestUser,
  localRandomFile,
  randomFile,
  savedFile,
  savedNames,
  sha256,
  withoutFileSystemAccess,
} from '../pages/files';

const MB = 1024 * 1024;

test('a 50 MB upload arrives intact and is not overwritten without asking', async ({ app, tunnel, testUser, sshd }) => {
  const dir = deviceDir('upload');
  const { file, sha256: localSha } = localRandomFile('upload-50mb.bin', 50 * MB);
  await app.open();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  const files = new FilesPanel(app.page);
  await files.open();
  // The panel starts at the login's home.
  await expect(files.path).toHaveValue(deviceHome());
  await files.go(dir);
  await expect(files.path).toHaveValue(dir);

  await files.upload.setInputFiles(file);
  await expect(files.transfer('upload-50mb.bin')).toBeVisible();
  await files.expectTransfer('upload-50mb.bin', 'done');
  const onDevice = path.join(dir, 'upload-50mb.bin');
  expect(await sha256(onDevice)).toBe(localSha);
  expect(fs.existsSync(`${onDevice}.partial`)).toBe(false);
  await expect(files.row('upload-50mb.bin')).toContainText('52 MB');

  // The same name again: the panel asks, and declining leaves the device's file alone.
  const small = localRandomFile('upload-50mb.bin', 1000);
  await files.upload.setInputFiles(small.file);
  await expect(files.question).toContainText('already exists');
  await app.page.getByTestId('files-decline').click();
  await expect(files.question).toBeHidden();
  expect(await sha256(onDevice)).toBe(localSha);
});

test('a 50 MB download is streamed to disk intact (File System Access API)', async ({ app, page, tunnel, testUser, sshd }) => {
  const dir = deviceDir('download');
  const remote = path.join(dir, 'download-50mb.bin');
  const remoteSha = randomFile(remote, 50 * MB);
  giveToTestUser(remote);
  await answerSaveDialogs(page);
  await app.open();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  const files = new FilesPanel(page);
  await files.open();
  await files.go(dir);
  await files.row('download-50mb.bin').getByTestId('file-download').click();
  await files.expectTransfer('download-50mb.bin', 'done');
  const saved = await savedFile(page, 'download-50mb.bin');
  expect(saved).toEqual({ sha256: remoteSha, size: 50 * MB });
});

test('without the File System Access API a download streams through the service worker', async ({ app, page, tunnel, testUser, sshd }) => {
  const dir = deviceDir('worker');
  const remote = path.join(dir, 'streamed-50mb.bin');
  const remoteSha = randomFile(remote, 50 * MB);
  giveToTestUser(remote);
  await withoutFileSystemAccess(page);
  await app.open();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  const files = new FilesPanel(page);
  await files.open();
  await files.go(dir);
  const download = page.waitForEvent('download', { timeout: 60_000 });
  await files.row('streamed-50mb.bin').getByTestId('file-download').click();
  const saved = await download;
  expect(saved.suggestedFilename()).toBe('streamed-50mb.bin');
  await files.expectTransfer('streamed-50mb.bin', 'done');
  const savedPath = await saved.path();
  expect(await sha256(savedPath)).toBe(remoteSha);
});

test('a file dropped onto the terminal lands in the directory shown', async ({ app, page, tunnel, testUser, sshd }) => {
  const dir = deviceDir('drop');
  await app.open();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  const files = new FilesPanel(page);
  await files.open();
  await files.go(dir);
  await expect(files.path).toHaveValue(dir);

  const dataTransfer = await page.evaluateHandle(() => {
    const transfer = new DataTransfer();
    transfer.items.add(new File(['dropped onto the terminal\n'], 'dropped.txt', { type: 'text/plain' }));
    return transfer;
  });
  const terminal = page.getByTestId('terminal');
  await terminal.dispatchEvent('dragover', { dataTransfer });
  await terminal.dispatchEvent('drop', { dataTransfer });
  await files.expectTransfer('dropped.txt', 'done', 30_000);
  expect(fs.readFileSync(path.join(dir, 'dropped.txt'), 'utf8')).toBe('dropped onto the terminal\n');
  await expect(files.row('dropped.txt')).toBeVisible();
});

test('an upload cancelled halfway leaves nothing that looks complete, and says so', async ({
  page,
  extraService,
  agent,
  sshd,
  testUser,
}) => {
  // A rate-limited service makes "halfway" last long enough to click.
  const limited = await extraService(['--rate-limit-per-tunnel', '4MB/s']);
  const tunnel = await limited.openTunnel(['SSH']);
  await agent({ endpoint: limited.url, token: tunnel.destinationAccessToken, destinations: [`SSH=${sshd.address}`] });
  const app = new BurrowApp(page, limited.url);
  const dir = deviceDir('cancel');
  const { file } = localRandomFile('cancel-me.bin', 40 * MB);
  await app.open();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  const files = new FilesPanel(page);
  await files.open();
  await files.go(dir);
  await expect(files.path).toHaveValue(dir);
  await files.upload.setInputFiles(file);
  const row = files.transfer('cancel-me.bin');
  // Halfway-ish: once a fifth is acknowledged, cancel.
  await expect
    .poll(async () => Number((await row.getByTestId('transfer-figures').innerText()).match(/(\d+)%/)?.[1] ?? 0), {
      timeout: 60_000,
    })
    .toBeGreaterThanOrEqual(20);
  expect(await row.getAttribute('data-state')).toBe('running');
  await row.getByTestId('transfer-cancel').click();
  await files.expectTransfer('cancel-me.bin', 'cancelled', 30_000);
  await expect(row.getByTestId('transfer-message')).toHaveText('Cancelled. Nothing was kept.');
  await expect.poll(() => fs.readdirSync(dir), { timeout: 10_000 }).toEqual([]);
  // The shell was never disturbed.
  await app.terminal.run('echo after-cancel-$((40+2))');
  await app.terminal.expectText(/^after-cancel-42$/m);
});

test('permission denied and a missing directory are said plainly', async ({ app, tunnel, testUser, sshd }) => {
  await app.open();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  const files = new FilesPanel(app.page);
  await files.open();
  await files.go('/root');
  await expect(files.error).toHaveText('Permission denied on the device: /root.');
  await files.go('/no/such/directory');
  await expect(files.error).toHaveText('Not found on the device: /no/such/directory.');
  // An upload into a directory the user may not write to.
  await files.go('/');
  await expect(files.row('etc')).toBeVisible();
  const { file } = localRandomFile('denied.txt', 100);
  await files.upload.setInputFiles(file);
  await files.expectTransfer('denied.txt', 'failed', 30_000);
  await expect(files.transfer('denied.txt').getByTestId('transfer-message')).toContainText('Permission denied on the device: /denied.txt');
  expect(fs.existsSync('/denied.txt') || fs.existsSync('/denied.txt.partial')).toBe(false);
});

test('a device without an SFTP server says what to install, and the shell keeps working', async ({
  app,
  burrow,
  agent,
  extraSshd,
  testUser,
}) => {
  const bare = await extraSshd({ sftp: false });
  const tunnel = await burrow.openTunnel(['SSH']);
  await agent({ endpoint: burrow.url, token: tunnel.destinationAccessToken, destinations: [`SSH=${bare.address}`] });
  await app.open();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), bare.hostKeyFingerprints[0]);
  const files = new FilesPanel(app.page);
  await files.toggle.click();
  await expect(files.error).toContainText('SFTP is missing on the device', { timeout: 20_000 });
  await expect(files.error).toContainText('openssh-sftp-server');
  await expect(files.error).toContainText('Dropbear');
  await app.terminal.run('echo shell-still-$((20+1))');
  await app.terminal.expectText(/^shell-still-21$/m);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
});

test('typing in the shell still echoes during a 50 MB download', async ({ page, extraService, agent, sshd, testUser }) => {
  // Rate-limited so that the download surely outlasts the typing.
  const limited = await extraService(['--rate-limit-per-tunnel', '5MB/s']);
  const tunnel = await limited.openTunnel(['SSH']);
  await agent({ endpoint: limited.url, token: tunnel.destinationAccessToken, destinations: [`SSH=${sshd.address}`] });
  const app = new BurrowApp(page, limited.url);
  const dir = deviceDir('echo');
  const remote = path.join(dir, 'while-typing.bin');
  const remoteSha = randomFile(remote, 50 * MB);
  giveToTestUser(remote);
  await answerSaveDialogs(page);
  await app.open();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  const files = new FilesPanel(page);
  await files.open();
  await files.go(dir);
  await files.row('while-typing.bin').getByTestId('file-download').click();
  const row = files.transfer('while-typing.bin');
  await expect
    .poll(async () => Number((await row.getByTestId('transfer-figures').innerText()).match(/(\d+)%/)?.[1] ?? 0), {
      timeout: 60_000,
    })
    .toBeGreaterThanOrEqual(5);
  // What the operator sees mid-transfer (kept with the test's results; the README shows one).
  await page.screenshot({ path: test.info().outputPath('files-panel.png') });
  for (const n of [1, 2, 3]) {
    await app.terminal.run(`echo typed-${n}-$((${n}*7))`);
    await app.terminal.expectText(new RegExp(`^typed-${n}-${n * 7}$`, 'm'), 10_000);
  }
  // The echoes came while the download was still running.
  expect(await row.getAttribute('data-state')).toBe('running');
  await files.expectTransfer('while-typing.bin', 'done', 120_000);
  expect(await savedFile(page, 'while-typing.bin')).toEqual({ sha256: remoteSha, size: 50 * MB });
  expect(await savedNames(page)).toEqual(['while-typing.bin']);
});
