// Page objects for the terminal tabs and session recording: the tab strip, switching, and the
// recording's file as the page saved it (into the origin-private file system that stands in
// for the save dialog, see answerSaveDialogs in files.ts).
import { expect } from '@playwright/test';
import type { Locator, Page } from '@playwright/test';
import type { BurrowApp } from './burrow-app';

/** The tab strip above the terminal. */
export class Tabs {
  constructor(readonly app: BurrowApp) {}

  get page(): Page {
    return this.app.page;
  }

  /** Every tab, in order. */
  get all(): Locator {
    return this.page.getByTestId('tab');
  }

  /** The tab with id `id` (1 for the session's first shell). */
  tab(id: number): Locator {
    return this.page.locator(`[data-testid="tab"][data-tab="${id}"]`);
  }

  /** The shown tab. */
  get active(): Locator {
    return this.page.locator('[data-testid="tab"][aria-selected="true"]');
  }

  /** Opens a new terminal and waits for its prompt; resolves to its tab id. */
  async open(user: string): Promise<number> {
    const before = await this.all.count();
    await this.page.getByTestId('tab-new').click();
    await expect(this.all).toHaveCount(before + 1);
    const id = Number(await this.active.getAttribute('data-tab'));
    await this.app.terminal.waitForPrompt(user);
    return id;
  }

  /** Shows tab `id` by clicking it. */
  async click(id: number): Promise<void> {
    await this.tab(id).getByTestId('tab-title').click();
    await expect(this.tab(id)).toHaveAttribute('aria-selected', 'true');
  }

  /** Closes tab `id` with its ✕. */
  async close(id: number): Promise<void> {
    await this.tab(id).getByTestId('tab-close').click();
  }

  /** The shown tab's id. */
  async activeId(): Promise<number> {
    return Number(await this.active.getAttribute('data-tab'));
  }
}

/** The text of a file the page saved into its origin-private file system, or null. */
export async function savedText(page: Page, name: string): Promise<string | null> {
  return await page.evaluate(async (wanted) => {
    const root = await navigator.storage.getDirectory();
    try {
      const handle = await root.getFileHandle(wanted);
      return await (await handle.getFile()).text();
    } catch {
      return null;
    }
  }, name);
}

/** One parsed asciicast v2 file. */
export interface Cast {
  header: { version: number; width: number; height: number; timestamp: number; env?: Record<string, string> };
  events: [number, string, string][];
}

/** Parses `text` as asciicast v2, failing the test on anything malformed. */
export function parseCast(text: string): Cast {
  const lines = text.split('\n').filter((line) => line !== '');
  expect(lines.length).toBeGreaterThan(1);
  const header = JSON.parse(lines[0]);
  expect(header.version).toBe(2);
  expect(Number.isInteger(header.width) && header.width > 0).toBe(true);
  expect(Number.isInteger(header.height) && header.height > 0).toBe(true);
  expect(Number.isInteger(header.timestamp)).toBe(true);
  const events = lines.slice(1).map((line) => JSON.parse(line) as [number, string, string]);
  let last = 0;
  for (const event of events) {
    expect(event).toHaveLength(3);
    expect(typeof event[0]).toBe('number');
    expect(event[0]).toBeGreaterThanOrEqual(last);
    last = event[0];
    expect(['o', 'r']).toContain(event[1]);
    expect(typeof event[2]).toBe('string');
    if (event[1] === 'r') expect(event[2]).toMatch(/^\d+x\d+$/);
  }
  return { header, events };
}
