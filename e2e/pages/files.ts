// Page object of the Files panel (app/src/components/files.rs), every element by data-testid,
// plus the device-side helpers the Files scenarios share: files made on the device as the
// test user, sha256 of local and device files, and a save-dialog stand-in.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect, Locator, Page } from '@playwright/test';
import { runQuiet } from '../support/process';
import { TEST_USER } from '../support/sshd';
import type { BurrowApp } from './burrow-app';

export class FilesPanel {
  constructor(readonly page: Page) {}

  /**
   * Logs in to `device` through `tunnel` with `user`'s password, opens the panel and, given
   * `dir`, shows it: where every Files scenario starts.
   */
  static async loggedIn(
    app: BurrowApp,
    tunnel: { sourceAccessToken: string },
    user: { name: string; password: string },
    device: { hostKeyFingerprints: string[] },
    dir?: string,
  ): Promise<FilesPanel> {
    await app.loginWithPassword(tunnel, user, device);
    const files = new FilesPanel(app.page);
    await files.open();
    if (dir !== undefined) {
      await files.go(dir);
      await expect(files.path).toHaveValue(dir);
    }
    return files;
  }

  byId(id: string): Locator {
    return this.page.getByTestId(id);
  }
  get toggle(): Locator {
    return this.byId('files-toggle');
  }
  get panel(): Locator {
    return this.byId('files');
  }
  get path(): Locator {
    return this.byId('files-path');
  }
  get upload(): Locator {
    return this.byId('files-upload');
  }
  get error(): Locator {
    return this.byId('files-error');
  }
  get question(): Locator {
    return this.byId('files-question');
  }
  row(name: string): Locator {
    return this.page.locator(`[data-testid="file-row"][data-name="${name}"]`);
  }
  transfer(name: string): Locator {
    return this.page.locator(`[data-testid="transfer"][data-name="${name}"]`);
  }

  /** Opens the panel and waits until it shows a directory. */
  async open(): Promise<void> {
    await this.toggle.click();
    await expect(this.panel).toBeVisible();
    await expect(this.path).toHaveValue(/^\//, { timeout: 20_000 });
  }

  /** Types a directory into the path bar. */
  async go(dir: string): Promise<void> {
    await this.path.fill(dir);
    await this.path.press('Enter');
  }

  /**
   * Puts `size` random bytes on the device as `dir/name` (the test user's), refreshes the
   * directory shown and starts downloading the file; resolves to its sha256.
   */
  async downloadNew(dir: string, name: string, size: number): Promise<string> {
    const remote = path.join(dir, name);
    const sha = randomFile(remote, size);
    giveToTestUser(remote);
    await this.byId('files-refresh').click();
    await this.row(name).getByTestId('file-download').click();
    await expect(this.transfer(name)).toBeVisible();
    return sha;
  }

  /** The percentage a transfer row shows. */
  async percent(name: string): Promise<number> {
    const figures = await this.transfer(name).getByTestId('transfer-figures').innerText();
    return Number(figures.match(/(\d+)%/)?.[1] ?? 0);
  }

  /** Waits until the transfer of `name` is at least `percent` done (and still running). */
  async waitForPercent(name: string, percent: number, timeout = 60_000): Promise<void> {
    await expect.poll(() => this.percent(name), { timeout }).toBeGreaterThanOrEqual(percent);
    expect(await this.transfer(name).getAttribute('data-state')).toBe('running');
  }

  /** Answers the panel's open question (typing `name` first when it asks for one). */
  async answer(name?: string): Promise<void> {
    if (name !== undefined) await this.byId('files-name').fill(name);
    await this.byId('files-confirm').click();
    await expect(this.question).toBeHidden();
  }

  /** Waits for the transfer of `name` to end in `state` (done, failed, cancelled). */
  async expectTransfer(name: string, state: string, timeout = 120_000): Promise<void> {
    await expect(this.transfer(name)).toHaveAttribute('data-state', state, { timeout });
  }
}

/** The test user's home directory on the device. */
export function deviceHome(): string {
  return path.join('/home', TEST_USER);
}

/** A folder of the test user's, new for each call, under its home. */
export function deviceDir(name: string): string {
  const dir = path.join(deviceHome(), `${name}-${process.pid}-${Date.now()}`);
  fs.mkdirSync(dir, { recursive: true });
  runQuiet('chown', [`${TEST_USER}:${TEST_USER}`, dir]);
  return dir;
}

/** Writes `size` random bytes to `file` (in 1 MiB pieces) and returns their sha256. */
export function randomFile(file: string, size: number): string {
  const hash = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'w');
  try {
    for (let left = size; left > 0; ) {
      const piece = crypto.randomBytes(Math.min(left, 1 << 20));
      fs.writeSync(fd, piece);
      hash.update(piece);
      left -= piece.length;
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** A random local file to upload. */
export function localRandomFile(name: string, size: number): { file: string; sha256: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'burrow-e2e-files-'));
  const file = path.join(dir, name);
  return { file, sha256: randomFile(file, size) };
}

/** The sha256 of a file, streamed. */
export async function sha256(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const piece of fs.createReadStream(file)) hash.update(piece as Buffer);
  return hash.digest('hex');
}

/** Owns `file` by the test user (files the test makes on the device). */
export function giveToTestUser(file: string): void {
  runQuiet('chown', [`${TEST_USER}:${TEST_USER}`, file]);
}

/**
 * Headless Chromium cannot answer the File System Access save dialog, so the dialog is stood
 * in for by a file of the origin-private file system: the app's real writable-stream code path
 * runs unchanged, only the choice of where is automatic. Call before opening the app.
 */
export async function answerSaveDialogs(page: Page): Promise<void> {
  await page.addInitScript(() => {
    (window as unknown as Record<string, unknown>).showSaveFilePicker = async (options: {
      suggestedName: string;
    }) => {
      const root = await navigator.storage.getDirectory();
      return root.getFileHandle(options.suggestedName, { create: true });
    };
  });
}

/** Makes the page look like a browser without the File System Access API. */
export async function withoutFileSystemAccess(page: Page): Promise<void> {
  await page.addInitScript(() => {
    Object.defineProperty(window, 'showSaveFilePicker', { value: undefined, configurable: true });
  });
}

/**
 * Makes the page look like a browser with neither the File System Access API nor service
 * workers (a page served over plain HTTP from another host): downloads fall back to a Blob.
 */
export async function withoutStreamingSaves(page: Page): Promise<void> {
  await withoutFileSystemAccess(page);
  await page.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, 'serviceWorker', { get: () => undefined, configurable: true });
  });
}

/**
 * Types `keys` into the shell one at a time, each after the previous one's echo, and returns
 * each key's latency in ms on the page's clock: from its `keydown` event to the first animation
 * frame whose terminal shows it. The line is cleared with Ctrl-U afterwards.
 */
export async function echoLatencies(app: BurrowApp, keys: string): Promise<number[]> {
  const page = app.page;
  await app.terminal.focus();
  const lead = ': keys-';
  await page.keyboard.type(lead);
  await app.terminal.expectText(lead);
  const latencies: number[] = [];
  let typed = lead;
  for (const key of keys) {
    typed += key;
    await page.evaluate((expected) => {
      const shows = () => {
        const rows = document.querySelector('[data-testid="terminal"] .xterm-rows') as HTMLElement | null;
        let text = rows ? rows.innerText.replace(/\u00a0/g, ' ') : '';
        const term = (window as unknown as { __burrowTerm?: any }).__burrowTerm;
        if (text.trim() === '' && term) {
          const buffer = term.buffer.active;
          for (let i = buffer.viewportY; i < buffer.viewportY + term.rows; i++) {
            text += `${buffer.getLine(i)?.translateToString(true) ?? ''}\n`;
          }
        }
        return text.includes(expected);
      };
      const state = window as unknown as { __echo?: Promise<number> };
      state.__echo = new Promise<number>((resolve, reject) => {
        document.addEventListener(
          'keydown',
          (event) => {
            const pressed = event.timeStamp;
            const deadline = performance.now() + 30_000;
            const frame = () => {
              if (shows()) resolve(performance.now() - pressed);
              else if (performance.now() > deadline) reject(new Error(`no echo of ${expected}`));
              else requestAnimationFrame(frame);
            };
            requestAnimationFrame(frame);
          },
          { capture: true, once: true },
        );
      });
    }, typed);
    await page.keyboard.type(key);
    latencies.push(await page.evaluate(() => (window as unknown as { __echo: Promise<number> }).__echo));
  }
  await page.keyboard.press('Control+U');
  return latencies;
}

/** The sha256 and size of a file the page saved into its origin-private file system. */
export async function savedFile(page: Page, name: string): Promise<{ sha256: string; size: number } | null> {
  return await page.evaluate(async (wanted) => {
    const root = await navigator.storage.getDirectory();
    let handle: FileSystemFileHandle;
    try {
      handle = await root.getFileHandle(wanted);
    } catch {
      return null;
    }
    const file = await handle.getFile();
    const digest = await crypto.subtle.digest('SHA-256', await file.arrayBuffer());
    const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
    return { sha256: hex, size: file.size };
  }, name);
}

/** Names in the page's origin-private file system. */
export async function savedNames(page: Page): Promise<string[]> {
  return await page.evaluate(async () => {
    const root = await navigator.storage.getDirectory();
    const names: string[] = [];
    // keys() is Chromium's async iterator over a directory's names.
    const keyed = root as unknown as { keys(): AsyncIterable<string> };
    for await (const name of keyed.keys()) names.push(name);
    return names.sort();
  });
}
