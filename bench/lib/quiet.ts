// A Chromium page for the figures that move data through the page's WebSocket, driven without
// Playwright.
//
// Playwright turns on the DevTools protocol's Network domain for every page it drives, and from
// then on Chromium serialises every WebSocket frame, payload included (base64), and sends it to
// the test runner. That costs the browser more than the frames themselves: in this repository's
// measurements a bare page received 182 MB/s of 64 KiB WebSocket messages with no DevTools client
// but 42 MB/s under Playwright, and a 1-byte WebSocket echo took 0.3 ms against 1.2 ms. An
// operator's browser has no DevTools client listening, so echo, time to prompt and throughput
// are measured here: the same Debian Chromium and flags, started by this module and driven over
// `--remote-debugging-pipe` with only the Page, Runtime and Input domains. Nothing in the page
// differs; the timing hooks (`hooks.ts`) are installed the same way, before any page script.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { CHROMIUM_LAUNCH_OPTIONS } from '../../e2e/support/chromium';

/** One DevTools protocol reply, or an event (no `id`). */
interface Reply {
  id?: number;
  method?: string;
  params?: any;
  result?: any;
  error?: { message: string };
}

/** A key as `Input.dispatchKeyEvent` needs it. */
interface KeyDef {
  key: string;
  code: string;
  keyCode: number;
  text?: string;
}

const NAMED_KEYS: Record<string, KeyDef> = {
  Enter: { key: 'Enter', code: 'Enter', keyCode: 13, text: '\r' },
  Shift: { key: 'Shift', code: 'ShiftLeft', keyCode: 16 },
  Control: { key: 'Control', code: 'ControlLeft', keyCode: 17 },
  Backspace: { key: 'Backspace', code: 'Backspace', keyCode: 8 },
  Escape: { key: 'Escape', code: 'Escape', keyCode: 27 },
};

/** The protocol's modifier bits. */
const MODIFIER_BITS: Record<string, number> = { Alt: 1, Control: 2, Meta: 4, Shift: 8 };

function keyDef(name: string): KeyDef {
  const named = NAMED_KEYS[name];
  if (named) return named;
  if (name.length === 1) {
    const upper = name.toUpperCase();
    const letter = upper >= 'A' && upper <= 'Z';
    return {
      key: name,
      code: letter ? `Key${upper}` : '',
      keyCode: letter ? upper.charCodeAt(0) : name.charCodeAt(0),
      text: name,
    };
  }
  throw new Error(`the quiet page knows no key "${name}"`);
}

/** A Chromium (headless unless asked) with one page, driven over a DevTools pipe (see the module comment). */
export class QuietPage {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: any) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Map<string, (params: any) => void>();
  private buffer = '';
  private sessionId = '';
  private exited = false;

  private constructor(
    private readonly child: ChildProcess,
    private readonly userDataDir: string,
  ) {
    const input = child.stdio[4] as Readable;
    input.setEncoding('utf8');
    input.on('data', (chunk: string) => this.onData(chunk));
    child.on('exit', () => {
      this.exited = true;
      for (const { reject } of this.waiting.values()) reject(new Error('Chromium exited'));
      this.waiting.clear();
    });
  }

  /**
   * Starts Chromium and opens one page with `initScript` (a function) run before its scripts.
   * Headless unless `headed` (a window on the X display in `DISPLAY`, e.g. Xvfb's): headless
   * Chromium schedules its frames differently, so the echo figure measures both.
   */
  static async open(
    initScript: () => void,
    viewport = { width: 1200, height: 800 },
    { headed = false }: { headed?: boolean } = {},
  ): Promise<QuietPage> {
    if (headed && !process.env.DISPLAY) throw new Error('a headed Chromium needs an X display (DISPLAY); run under xvfb-run');
    const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'burrow-bench-chromium-'));
    const child = spawn(
      CHROMIUM_LAUNCH_OPTIONS.executablePath,
      [
        ...CHROMIUM_LAUNCH_OPTIONS.args,
        ...(headed ? [] : ['--headless']),
        '--remote-debugging-pipe',
        `--user-data-dir=${userDataDir}`,
        '--no-first-run',
        '--no-default-browser-check',
        `--window-size=${viewport.width},${viewport.height}`,
        'about:blank',
      ],
      { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] },
    );
    const page = new QuietPage(child, userDataDir);
    const { targetInfos } = await page.send('Target.getTargets');
    let target = (targetInfos as Array<{ type: string; targetId: string }>).find((t) => t.type === 'page');
    if (!target) target = { type: 'page', targetId: (await page.send('Target.createTarget', { url: 'about:blank' })).targetId };
    const { sessionId } = await page.send('Target.attachToTarget', { targetId: target.targetId, flatten: true });
    page.sessionId = sessionId;
    await page.send('Page.enable');
    await page.send('Runtime.enable');
    await page.send('Emulation.setDeviceMetricsOverride', {
      width: viewport.width,
      height: viewport.height,
      deviceScaleFactor: 1,
      mobile: false,
    });
    await page.send('Page.addScriptToEvaluateOnNewDocument', { source: `(${initScript.toString()})();` });
    return page;
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    for (;;) {
      const end = this.buffer.indexOf('\0');
      if (end < 0) return;
      const text = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 1);
      const message = JSON.parse(text) as Reply;
      if (typeof message.id !== 'number') {
        if (message.method) this.listeners.get(message.method)?.(message.params);
        continue;
      }
      const waiter = this.waiting.get(message.id);
      if (!waiter) continue;
      this.waiting.delete(message.id);
      if (message.error) waiter.reject(new Error(message.error.message));
      else waiter.resolve(message.result);
    }
  }

  /** Sends one protocol command (to the page's session once attached) and awaits its result. */
  send(method: string, params: Record<string, unknown> = {}): Promise<any> {
    if (this.exited) return Promise.reject(new Error('Chromium exited'));
    const id = this.nextId++;
    const message: Record<string, unknown> = { id, method, params };
    if (this.sessionId) message.sessionId = this.sessionId;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      (this.child.stdio[3] as Writable).write(`${JSON.stringify(message)}\0`);
    });
  }

  /** Navigates and waits for the document to finish loading. */
  async goto(url: string): Promise<void> {
    const { errorText } = await this.send('Page.navigate', { url });
    if (errorText) throw new Error(`cannot load ${url}: ${errorText}`);
    await this.waitForFunction(() => document.readyState === 'complete', undefined);
  }

  /** Runs `fn(arg)` in the page and returns its (JSON) result, awaiting a promise. */
  async evaluate<A, R>(fn: (arg: A) => R | Promise<R>, arg?: A): Promise<R> {
    const { result, exceptionDetails } = await this.send('Runtime.evaluate', {
      expression: `(${fn.toString()})(${JSON.stringify(arg ?? null)})`,
      awaitPromise: true,
      returnByValue: true,
    });
    if (exceptionDetails) {
      throw new Error(`page script failed: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`);
    }
    return result.value as R;
  }

  /** Polls `fn(arg)` every 20 ms until it is true. */
  async waitForFunction<A>(fn: (arg: A) => boolean, arg: A, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.evaluate(fn, arg))) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${fn.toString()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Whether the element with this `data-testid` is shown. */
  async isVisible(testId: string): Promise<boolean> {
    return await this.evaluate((id) => {
      const el = document.querySelector(`[data-testid="${id}"]`) as HTMLElement | null;
      return !!el && el.getClientRects().length > 0;
    }, testId);
  }

  /** Sets an input's value the way typing does: the field is focused first (as a click or Tab
   *  would), then an `input` event follows. */
  async fill(testId: string, value: string): Promise<void> {
    const ok = await this.evaluate(
      ([id, text]) => {
        const el = document.querySelector(`[data-testid="${id}"]`) as HTMLInputElement | HTMLTextAreaElement | null;
        if (!el) return false;
        el.focus();
        const proto = el instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
        Object.getOwnPropertyDescriptor(proto, 'value')?.set?.call(el, text);
        el.dispatchEvent(new Event('input', { bubbles: true }));
        el.dispatchEvent(new Event('change', { bubbles: true }));
        return true;
      },
      [testId, value],
    );
    if (!ok) throw new Error(`no element [data-testid="${testId}"] to fill`);
  }

  /** Clicks the centre of the element with this `data-testid` with the mouse. */
  async click(testId: string): Promise<void> {
    const box = await this.evaluate((id) => {
      const el = document.querySelector(`[data-testid="${id}"]`) as HTMLElement | null;
      if (!el) return null;
      el.scrollIntoView({ block: 'center' });
      const r = el.getBoundingClientRect();
      return { x: r.left + r.width / 2, y: r.top + r.height / 2 };
    }, testId);
    if (!box) throw new Error(`no element [data-testid="${testId}"] to click`);
    for (const type of ['mousePressed', 'mouseReleased']) {
      await this.send('Input.dispatchMouseEvent', { type, x: box.x, y: box.y, button: 'left', clickCount: 1 });
    }
  }

  /** Types text into the focused element, as one insertion (as an IME or a paste would). */
  async type(text: string): Promise<void> {
    await this.send('Input.insertText', { text });
  }

  /** Presses and releases a key or a chord such as `Control+L`. */
  async press(chord: string): Promise<void> {
    const parts = chord.split('+');
    const main = keyDef(parts[parts.length - 1]);
    let modifiers = 0;
    for (const name of parts.slice(0, -1)) {
      const mod = keyDef(name);
      modifiers |= MODIFIER_BITS[name] ?? 0;
      await this.send('Input.dispatchKeyEvent', {
        type: 'rawKeyDown',
        key: mod.key,
        code: mod.code,
        windowsVirtualKeyCode: mod.keyCode,
        modifiers,
      });
    }
    const ownBit = MODIFIER_BITS[main.key] ?? 0;
    const chorded = modifiers !== 0;
    const text = chorded ? undefined : main.text;
    const down: Record<string, unknown> = {
      type: text ? 'keyDown' : 'rawKeyDown',
      key: chorded && main.key.length === 1 ? main.key.toLowerCase() : main.key,
      code: main.code,
      windowsVirtualKeyCode: main.keyCode,
      modifiers: modifiers | ownBit,
    };
    if (text) {
      down.text = text;
      down.unmodifiedText = text;
    }
    await this.send('Input.dispatchKeyEvent', down);
    await this.send('Input.dispatchKeyEvent', {
      type: 'keyUp',
      key: down.key,
      code: main.code,
      windowsVirtualKeyCode: main.keyCode,
      modifiers,
    });
    for (const name of parts.slice(0, -1).reverse()) {
      const mod = keyDef(name);
      modifiers &= ~(MODIFIER_BITS[name] ?? 0);
      await this.send('Input.dispatchKeyEvent', {
        type: 'keyUp',
        key: mod.key,
        code: mod.code,
        windowsVirtualKeyCode: mod.keyCode,
        modifiers,
      });
    }
  }

  /**
   * Records a Chromium trace (renderer main thread: tasks, rendering, scripts, garbage
   * collection) until `stop` is called; `stop` returns its events (open the JSON in Chromium's
   * DevTools Performance panel).
   */
  async startTrace(): Promise<() => Promise<unknown[]>> {
    const events: unknown[] = [];
    this.listeners.set('Tracing.dataCollected', (params) => events.push(...params.value));
    await this.send('Tracing.start', {
      transferMode: 'ReportEvents',
      traceConfig: {
        includedCategories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8', 'blink', 'toplevel'],
      },
    });
    return async () => {
      const complete = new Promise<void>((resolve) => this.listeners.set('Tracing.tracingComplete', () => resolve()));
      await this.send('Tracing.end');
      await complete;
      this.listeners.delete('Tracing.dataCollected');
      this.listeners.delete('Tracing.tracingComplete');
      return events;
    };
  }

  /** Writes a CPU profile of what runs until `stop` is called (Chromium's DevTools format). */
  async startProfile(): Promise<() => Promise<unknown>> {
    await this.send('Profiler.enable');
    await this.send('Profiler.setSamplingInterval', { interval: 200 });
    await this.send('Profiler.start');
    return async () => (await this.send('Profiler.stop')).profile;
  }

  /** Ends Chromium and removes its profile folder. */
  async close(): Promise<void> {
    if (!this.exited) {
      const gone = new Promise((resolve) => this.child.once('exit', resolve));
      this.sessionId = '';
      await Promise.race([this.send('Browser.close').catch(() => undefined), gone]);
      await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 5000))]);
      if (!this.exited) this.child.kill('SIGKILL');
    }
    fs.rmSync(this.userDataDir, { recursive: true, force: true });
  }
}
