// What the benchmarks add to the page before the app loads (`context.addInitScript`): timing
// probes only, the app itself is unchanged.
//
// - xterm.js's global `Terminal` is replaced, when its script defines it, by a subclass that
//   remembers the instance and times its renders; its `write` counts the bytes the app hands
//   over, spots an end marker in them, and in "raw" mode skips parsing and rendering (the bytes
//   are acknowledged at once, so the SSH window keeps moving): raw SSH channel throughput.
// - Keystrokes are stamped at their `keydown` (the browser's event time) and matched to the
//   first render after the cursor moved: key pressed → character painted.
// - The status line's label changes are stamped (connect phases), the connect click and the
//   Enter key are stamped, long tasks are collected, and the moment the connect button is first
//   enabled is kept (first load to interactive form).
//
// Everything lands in `window.__bench`, read by bench.spec.ts with `page.evaluate`.

/** The state `installHooks` keeps in the page. */
export interface BenchState {
  raw: boolean;
  marker: string | null;
  tail: string;
  bytes: number;
  markerAt: number | null;
  markerBytes: number;
  parsedAt: number | null;
  paintedAt: number | null;
  enterAt: number | null;
  clickAt: number | null;
  interactiveAt: number | null;
  promptSource: string | null;
  promptAt: number | null;
  phases: Array<{ label: string; t: number }>;
  echo: number[];
  inputDelays: number[];
  longTasks: number[];
  renders: number;
  /** Tunnel WebSocket messages received, and their bytes. */
  wsMessages: number;
  wsBytes: number;
}

/** Runs in the page before any of its scripts. */
export function installHooks(): void {
  const B = {
    raw: false,
    marker: null as string | null,
    tail: '',
    bytes: 0,
    markerAt: null as number | null,
    markerBytes: 0,
    parsedAt: null as number | null,
    paintedAt: null as number | null,
    enterAt: null as number | null,
    clickAt: null as number | null,
    interactiveAt: null as number | null,
    promptSource: null as string | null,
    promptAt: null as number | null,
    phases: [] as Array<{ label: string; t: number }>,
    echo: [] as number[],
    inputDelays: [] as number[],
    longTasks: [] as number[],
    renders: 0,
    wsMessages: 0,
    wsBytes: 0,
    term: null as any,
    pendingKeys: [] as Array<{ t: number; pos: number }>,
    /** The last timed key's way through the page: keydown, WebSocket send, first message back, write. */
    trace: null as null | { t: number; send: number | null; recv: number | null; write: number | null },
    /** Per echoed key: [keydown → send, send → first message back, message → terminal write, write → paint]. */
    echoParts: [] as number[][],
    awaitingPaint: false,
    statusObserver: null as MutationObserver | null,
    /** End markers watched in every terminal's output (the tabs figure): marker → when seen. */
    tabMarkers: null as null | Record<string, number | null>,
    /** Terminals made so far (one per tab). */
    terms: 0,
  };
  (window as any).__bench = B;

  const cursorPos = (): number => {
    const term = B.term;
    if (!term) return -1;
    const buffer = term.buffer.active;
    return (buffer.baseY + buffer.cursorY) * term.cols + buffer.cursorX;
  };

  const visibleText = (): string => {
    const term = B.term;
    const buffer = term.buffer.active;
    const lines: string[] = [];
    for (let i = buffer.viewportY; i < buffer.viewportY + term.rows; i++) {
      lines.push(buffer.getLine(i)?.translateToString(true) ?? '');
    }
    return lines.join('\n');
  };

  const onRender = (): void => {
    const now = performance.now();
    B.renders += 1;
    if (B.pendingKeys.length > 0) {
      const pos = cursorPos();
      const still: Array<{ t: number; pos: number }> = [];
      for (const key of B.pendingKeys) {
        if (pos !== key.pos) {
          B.echo.push(now - key.t);
          const trace = B.trace;
          if (trace && trace.t === key.t && trace.send !== null && trace.recv !== null && trace.write !== null) {
            B.echoParts.push([trace.send - trace.t, trace.recv - trace.send, trace.write - trace.recv, now - trace.write]);
          }
        } else still.push(key);
      }
      B.pendingKeys = still;
    }
    if (B.awaitingPaint && B.parsedAt !== null) {
      B.awaitingPaint = false;
      B.paintedAt = now;
    }
    if (B.promptSource !== null && B.promptAt === null && new RegExp(B.promptSource, 'm').test(visibleText())) {
      B.promptAt = now;
    }
  };

  const latin1 = (bytes: Uint8Array): string => {
    let text = '';
    for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return text;
  };

  const onBytes = (data: Uint8Array): boolean => {
    B.bytes += data.length;
    if (B.marker === null || B.markerAt !== null) return false;
    const window_ = B.tail + latin1(data.subarray(Math.max(0, data.length - 256)));
    B.tail = window_.slice(-64);
    if (window_.includes(B.marker)) {
      B.markerAt = performance.now();
      B.markerBytes = B.bytes;
      return true;
    }
    return false;
  };

  let Wrapped: any;
  Object.defineProperty(window, 'Terminal', {
    configurable: true,
    get() {
      return Wrapped;
    },
    set(Real: any) {
      Wrapped = class extends Real {
        constructor(...args: any[]) {
          super(...args);
          B.term = this;
          B.terms += 1;
          (window as any).__burrowTerm = this;
          this.onRender(onRender);
        }

        write(data: any, callback?: () => void): void {
          if (B.trace && B.trace.recv !== null && B.trace.write === null) B.trace.write = performance.now();
          const isBytes = typeof data !== 'string';
          if (B.tabMarkers !== null && isBytes) {
            // Each terminal's own tail, so a marker split across two writes is still seen.
            const bytes = data as Uint8Array;
            const text = ((this as any).__benchTail ?? '') + latin1(bytes.subarray(Math.max(0, bytes.length - 256)));
            (this as any).__benchTail = text.slice(-64);
            for (const marker of Object.keys(B.tabMarkers)) {
              if (B.tabMarkers[marker] === null && text.includes(marker)) B.tabMarkers[marker] = performance.now();
            }
          }
          const sawMarker = isBytes ? onBytes(data as Uint8Array) : false;
          if (B.raw && isBytes) {
            if (callback) queueMicrotask(callback);
            return;
          }
          if (sawMarker) {
            const done = callback;
            callback = () => {
              B.parsedAt = performance.now();
              B.awaitingPaint = true;
              // A render follows a parse in the next animation frame; if nothing changes on
              // screen, the frame after the parse is the paint.
              requestAnimationFrame(() =>
                requestAnimationFrame(() => {
                  if (B.awaitingPaint) {
                    B.awaitingPaint = false;
                    B.paintedAt = performance.now();
                  }
                }),
              );
              if (done) done();
            };
          }
          super.write(data, callback);
        }
      };
    },
  });

  // The tunnel WebSocket, to split a key's echo into the page's parts and the round trip.
  const RealWebSocket = window.WebSocket;
  (window as any).WebSocket = class extends RealWebSocket {
    constructor(...args: any[]) {
      super(...(args as [string, string[]]));
      this.addEventListener('message', (event: MessageEvent) => {
        B.wsMessages += 1;
        B.wsBytes += (event.data as ArrayBuffer).byteLength ?? 0;
        if (B.trace && B.trace.send !== null && B.trace.recv === null) B.trace.recv = performance.now();
      });
    }

    send(data: any): void {
      if (B.trace && B.trace.send === null) B.trace.send = performance.now();
      super.send(data);
    }
  };

  window.addEventListener(
    'keydown',
    (event) => {
      if (event.key === 'Enter') B.enterAt = event.timeStamp;
      if (event.key === 'Shift') {
        const t = event.timeStamp;
        requestAnimationFrame(() => B.inputDelays.push(performance.now() - t));
        return;
      }
      if (event.key.length === 1 && !event.ctrlKey && !event.altKey && !event.metaKey) {
        B.pendingKeys.push({ t: event.timeStamp, pos: cursorPos() });
        B.trace = { t: event.timeStamp, send: null, recv: null, write: null };
      }
    },
    true,
  );

  window.addEventListener(
    'click',
    (event) => {
      const target = event.target as Element | null;
      if (target?.closest?.('[data-testid="connect"]')) B.clickAt = event.timeStamp;
    },
    true,
  );

  try {
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) B.longTasks.push(entry.duration);
    }).observe({ type: 'longtask', buffered: true });
  } catch {
    // Long tasks are an extra; a browser without them still gives every other figure.
  }

  const watchInteractive = new MutationObserver(() => {
    const button = document.querySelector('[data-testid="connect"]') as HTMLButtonElement | null;
    if (button && !button.disabled && B.interactiveAt === null) {
      B.interactiveAt = performance.now();
      watchInteractive.disconnect();
    }
  });
  watchInteractive.observe(document, { childList: true, subtree: true, attributes: true });

  (B as any).watchStatus = (on: boolean): void => {
    B.statusObserver?.disconnect();
    B.statusObserver = null;
    if (!on) return;
    let last = '';
    const check = (): void => {
      const label = document.querySelector('[data-testid="status"] .label')?.textContent ?? '';
      if (label !== last) {
        last = label;
        B.phases.push({ label, t: performance.now() });
      }
    };
    check();
    B.statusObserver = new MutationObserver(check);
    B.statusObserver.observe(document.body, { childList: true, subtree: true, characterData: true });
  };
}
