// Turns the figures of one benchmark run (bench/results/*.json) into BENCHMARKS.md: the machine,
// the date, every figure with its median and spread, the ratio to native, and whether the
// issue's target is met.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Runs, fmt, ratio, spread } from './stats';
import { tabsSection, tabsSummary } from './report-tabs';

/* eslint-disable @typescript-eslint/no-explicit-any */
export interface ReportInput {
  bundle: any;
  prompt: any;
  echo: any;
  throughput: any;
  sftp?: any;
  typeahead?: any;
  tabs?: any;
  scale: any;
  runs: number;
  keys: number;
  startLoad: string;
  /** When the run's first figure was measured. */
  date: Date;
}

function cpuModel(): string {
  try {
    const line = fs
      .readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'));
    if (line) return line.split(':')[1].trim();
  } catch {
    // Fall back to what Node knows.
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

function version(program: string, args: string[]): string {
  const result = spawnSync(program, args, { encoding: 'utf8' });
  return `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n')[0] ?? 'unknown';
}

function kb(bytes: number): string {
  return (bytes / 1024).toFixed(1);
}

/** `yes` / `no` / `not measured` for a target. */
function met(ok: boolean | null): string {
  if (ok === null) return 'not measured';
  return ok ? '**yes**' : '**no**';
}

function ok(r: Runs | undefined): boolean {
  return !!r && r.values.length > 0 && Number.isFinite(r.median);
}

/** Which part of a key's time grows most from all keys' medians to the slowest keys', and by how much. */
function tailGrowth(parts: any): { key: string; text: string } {
  const names: Array<[string, string]> = [
    ['keyToSend', "the app's handling of the key (keydown → send)"],
    ['roundTrip', 'the round trip (send → message back)'],
    ['messageToWrite', 'decryption (message → write)'],
    ['writeToPaint', "the wait for the display's next frame (write → paint; a 60 Hz frame is 16.7 ms)"],
  ];
  const [key, name] = names.reduce((best, next) =>
    parts.tail[next[0]] - parts[next[0]] > parts.tail[best[0]] - parts[best[0]] ? next : best,
  );
  return { key, text: `${name}, by ${fmt(parts.tail[key] - parts[key], 1)} ms` };
}

/** SFTP without the tunnel limit, each way: ours, native and their ratio (NaN when unmeasured). */
function sftpFree(sftp: any): Array<{ dir: 'download' | 'upload'; ours: Runs; native: Runs; ratio: number }> {
  return (
    [
      ['download', sftp.free.download, sftp.free.nativeDownload],
      ['upload', sftp.free.upload, sftp.free.nativeUpload],
    ] as const
  ).map(([dir, ours, native]) => ({ dir, ours, native, ratio: ok(ours) && ok(native) ? ours.median / native.median : NaN }));
}

export function renderReport(input: ReportInput): string {
  const { bundle, prompt, echo, throughput, scale } = input;
  const lines: string[] = [];
  const out = (line = '') => lines.push(line);

  // --- Targets -----------------------------------------------------------------------------
  const promptRatio = prompt && ok(prompt.ours.total) && ok(prompt.native) ? prompt.ours.total.median / prompt.native.median : NaN;
  const echoP50 = echo?.ours?.p50?.median;
  const echoP99 = echo?.ours?.p99?.median;
  const rawRatio =
    throughput && ok(throughput.ours.raw) && ok(throughput.native.raw)
      ? throughput.ours.raw.median / throughput.native.raw.median
      : NaN;
  const rendered = throughput?.ours?.rendered?.median;
  const inputMax = throughput?.input?.max;
  const bundleGzip = bundle?.total?.gzip;
  const top = scale?.levels?.length ? scale.levels[scale.levels.length - 1] : null;

  out('# Benchmarks');
  out();
  out('Burrow in the browser against native OpenSSH, through the same local service, side by side in one run.');
  out('This file is rewritten by `cargo xtask bench` (sources: `bench/`); do not edit it by hand.');
  out();
  out(`- **Date**: ${input.date.toISOString().replace(/\.\d+Z$/, 'Z')}`);
  out(`- **Machine**: ${os.cpus().length} CPUs (\`nproc\`), ${cpuModel()}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB memory, Linux ${os.release()}`);
  // The bundle figure records the version Playwright saw; a run without it asks the binary.
  const chromium = bundle?.chromium ?? /\d+(\.\d+)+/.exec(version('/usr/bin/chromium', ['--version']))?.[0] ?? 'unknown';
  out(`- **Browser**: Debian's Chromium ${chromium} headless (\`--disable-gpu\`: no hardware WebGL, so the terminal uses xterm.js's DOM renderer)`);
  out(
    '- **Driving the page**: figures 1–3 use a Chromium started by `bench/lib/quiet.ts` and driven over a bare ' +
      'DevTools pipe (Page, Runtime and Input only). Playwright, used for figure 4, enables the Network domain, ' +
      'after which Chromium copies every WebSocket frame to the test runner: a bare page received 64 KiB messages ' +
      'at 182 MB/s without it and 42 MB/s under Playwright. An operator\'s browser has no such listener.',
  );
  out(`- **Native client**: ${version('ssh', ['-V'])}, password by sshpass; **device**: ${version('/usr/sbin/sshd', ['-V']) || 'OpenSSH sshd'}`);
  out(`- **Runs**: every figure ${input.runs} times; tables show the median and, in brackets, the smallest and largest run.`);
  out(
    `- **Load**: the machine may be shared with other jobs, which makes figures noisier and slower than on an ` +
      `idle machine. Load average (1, 5, 15 min) at the start: ` +
      `${input.startLoad || 'unknown'}; at the end of each figure: ` +
      [
        ['bundle', bundle],
        ['prompt', prompt],
        ['echo', echo],
        ['throughput', throughput],
        ['scale', scale],
        ['sftp', input.sftp],
        ['typeahead', input.typeahead],
        ['tabs', input.tabs],
      ]
        .filter(([, f]) => f)
        .map(([name, f]) => `${name} ${(f as any).load?.join(' / ')}`)
        .join('; ') +
      '.',
  );
  out();
  out('Paths measured:');
  out();
  out('- **ours**: Chromium → the app (russh in WebAssembly, xterm.js) → `burrow serve` → destination `burrow agent` → sshd;');
  out('- **native**: `ssh` → source `burrow agent` (already connected to the tunnel) → the same `burrow serve` → destination `burrow agent` → the same sshd.');
  out();

  out('## Summary');
  out();
  out('| Figure | Ours | Native | Ratio | Target | Met |');
  out('| --- | --- | --- | --- | --- | --- |');
  if (prompt) {
    out(
      `| 1. Time to prompt (ms) | ${spread(prompt.ours.total, 0)} | ${spread(prompt.native, 0)} | ${ratio(prompt.ours.total, prompt.native)} | ≤ 1.2× native | ${met(Number.isFinite(promptRatio) ? promptRatio <= 1.2 : null)} |`,
    );
  } else out('| 1. Time to prompt | failed | | | ≤ 1.2× native | not measured |');
  if (echo) {
    out(
      `| 2. Echo latency p50 (ms) | ${spread(echo.ours.p50, 2)} | ${spread(echo.native.p50, 2)} | ${ratio(echo.ours.p50, echo.native.p50)} | ≤ 8 ms | ${met(Number.isFinite(echoP50) ? echoP50 <= 8 : null)} |`,
    );
    out(
      `| 2. Echo latency p99 (ms) | ${spread(echo.ours.p99, 2)} | ${spread(echo.native.p99, 2)} | ${ratio(echo.ours.p99, echo.native.p99)} | ≤ 16 ms | ${met(Number.isFinite(echoP99) ? echoP99 <= 16 : null)} |`,
    );
    if (echo.headed) {
      const h = echo.headed.ours;
      out(
        `| 2. Echo latency p50, headed Chromium under Xvfb (ms) | ${spread(h.p50, 2)} | ${spread(echo.native.p50, 2)} | ${ratio(h.p50, echo.native.p50)} | ≤ 8 ms | ${met(ok(h.p50) ? h.p50.median <= 8 : null)} |`,
      );
      out(
        `| 2. Echo latency p99, headed Chromium under Xvfb (ms) | ${spread(h.p99, 2)} | ${spread(echo.native.p99, 2)} | ${ratio(h.p99, echo.native.p99)} | ≤ 16 ms | ${met(ok(h.p99) ? h.p99.median <= 16 : null)} |`,
      );
    }
  } else out('| 2. Echo latency | failed | | | p50 ≤ 8 ms, p99 ≤ 16 ms | not measured |');
  if (throughput) {
    out(
      `| 3. Raw SSH channel (MB/s) | ${spread(throughput.ours.raw)} | ${spread(throughput.native.raw)} | ${ratio(throughput.ours.raw, throughput.native.raw)} | ≥ 0.7× native | ${met(Number.isFinite(rawRatio) ? rawRatio >= 0.7 : null)} |`,
    );
    out(
      `| 3. Rendered output (MB/s) | ${spread(throughput.ours.rendered)} | ${spread(throughput.native.cat)} (\`cat\` to /dev/null) | ${ratio(throughput.ours.rendered, throughput.native.cat)} | ≥ 40 MB/s | ${met(Number.isFinite(rendered) ? rendered >= 40 : null)} |`,
    );
    out(
      `| 3. Input answered during output (ms, max) | ${fmt(inputMax, 0)} | – | – | ≤ 100 ms | ${met(Number.isFinite(inputMax) ? inputMax <= 100 : null)} |`,
    );
  } else out('| 3. Throughput | failed | | | raw ≥ 0.7× native, rendered ≥ 40 MB/s | not measured |');
  if (bundle) {
    out(
      `| 4. Bundle, everything the page loads (KB gzip) | ${kb(bundleGzip)} | – | – | ≤ 700 KB | ${met(Number.isFinite(bundleGzip) ? bundleGzip / 1024 <= 700 : null)} |`,
    );
    const bundleBrotli = bundle?.total?.brotli;
    out(
      `| 4. Wire weight, everything the first screen loads (KB brotli, as sent) | ${kb(bundleBrotli)} | – | – | < 600 KB | ${met(Number.isFinite(bundleBrotli) ? bundleBrotli / 1024 < 600 : null)} |`,
    );
    out(`| 4. First load to interactive form (ms) | ${spread(bundle.coldMs, 0)} | – | – | – | – |`);
  } else out('| 4. Bundle | failed | | | ≤ 700 KB gzip | not measured |');
  if (top) {
    const held = top.ready.median >= 1000 && top.failed.median === 0;
    const serviceP99 = top.serviceP99?.median;
    const latencyOk = Number.isFinite(serviceP99) ? serviceP99 <= 2 : null;
    out(
      `| 5. Tunnels held, one active session each | ${fmt(top.ready.median, 0)} of ${top.tunnels} | – | – | ≥ 1000 | ${met(held)} |`,
    );
    out(
      `| 5. p99 service time at ${top.tunnels} tunnels (ms, receive → forward in \`burrow serve\`) | ${Number.isFinite(serviceP99) ? spread(top.serviceP99, 2) : 'not measured'} | – | – | ≤ 2 ms | ${met(latencyOk)} |`,
    );
    out(
      `| 5. p99 relay latency at ${top.tunnels} tunnels (ms, one hop end to end, load client's clock) | ${spread(top.p99, 2)} | – | – | – | – |`,
    );
  } else out('| 5. Service scale | failed | | | ≥ 1000 tunnels, p99 ≤ 2 ms | not measured |');
  lines.push(...sftpSummary(input.sftp));
  lines.push(...typeaheadSummary(input.typeahead));
  lines.push(...tabsSummary(input.tabs));
  out();

  // --- 1 -----------------------------------------------------------------------------------
  out('## 1. Time to prompt');
  out();
  if (prompt) {
    out(
      'Ours: from the Connect click to the first frame that shows the bash prompt, on the page\'s own clock ' +
        '(`performance.now()`: the click event, the status line\'s phase changes, xterm.js\'s `onRender`). ' +
        'A fresh tunnel each run; the page is reloaded before each run; the device\'s host key is already known ' +
        `(a warm-up run accepted it; runs that asked again: ${prompt.ours.hostKeyAsked}). ` +
        'Native: from starting `sshpass -e ssh -tt` on a new pty to the prompt in its output; the source agent is ' +
        'already connected to the tunnel, as a local proxy is in practice. One warm-up run each.',
    );
    out();
    out('| Phase (ms) | Ours | Native |');
    out('| --- | --- | --- |');
    out(`| Click → cookie helper answered | ${spread(prompt.ours.cookie)} | – |`);
    out(`| Tunnel WebSocket open, destination ready | ${spread(prompt.ours.websocket)} | (source agent connected beforehand) |`);
    out(`| SSH handshake (key exchange, host key) | ${spread(prompt.ours.handshake)} | |`);
    out(`| Authentication (password) | ${spread(prompt.ours.auth)} | |`);
    out(`| Session channel, pty, shell | ${spread(prompt.ours.shell)} | |`);
    out(`| Shell started → prompt painted | ${spread(prompt.ours.prompt)} | |`);
    out(`| **SSH handshake → prompt** (what native does too) | ${spread(prompt.ours.sshToPrompt, 0)} | ${spread(prompt.native, 0)} (TCP to the agent, stream start, SSH, prompt) |`);
    out(`| **Total** | ${spread(prompt.ours.total, 0)} | ${spread(prompt.native, 0)} |`);
    out(`| Ratio (total) | ${ratio(prompt.ours.total, prompt.native)} | |`);
    out(`| Ratio (SSH handshake → prompt) | ${ratio(prompt.ours.sshToPrompt, prompt.native)} | |`);
  } else out('Not measured: the figure failed (see the `cargo xtask bench` output).');
  out();

  // --- 2 -----------------------------------------------------------------------------------
  out('## 2. Echo latency');
  out();
  if (echo) {
    out(
      `${echo.keys} keystrokes per run into bash's prompt, one at a time (each waits for its echo; the line is ` +
        'cleared with Ctrl-U every 100 keys, not timed). Ours: the `keydown` event\'s time stamp to the first ' +
        'xterm.js render after the cursor moved (the frame that paints the character); keys come from the DevTools ' +
        'Input domain, which adds nothing to the in-page interval. Native: writing the key to the pty master of ' +
        '`ssh -tt` to reading its echo back (no painting).',
    );
    out();
    const floor = echo.floor;
    out('| Latency (ms) | Ours | Native | Ratio | Bare page (browser floor) |');
    out('| --- | --- | --- | --- | --- |');
    out(`| p50 | ${spread(echo.ours.p50, 2)} | ${spread(echo.native.p50, 2)} | ${ratio(echo.ours.p50, echo.native.p50)} | ${floor ? spread(floor.p50, 2) : '–'} |`);
    out(`| p99 | ${spread(echo.ours.p99, 2)} | ${spread(echo.native.p99, 2)} | ${ratio(echo.ours.p99, echo.native.p99)} | ${floor ? spread(floor.p99, 2) : '–'} |`);
    out(`| worst key of all runs | ${fmt(echo.ours.max, 1)} | ${fmt(echo.native.max, 1)} | | |`);
    const headed = echo.headed;
    if (headed) {
      out(`| p50, headed (Xvfb) | ${spread(headed.ours.p50, 2)} | ${spread(echo.native.p50, 2)} | ${ratio(headed.ours.p50, echo.native.p50)} | ${spread(headed.floor.p50, 2)} |`);
      out(`| p99, headed (Xvfb) | ${spread(headed.ours.p99, 2)} | ${spread(echo.native.p99, 2)} | ${ratio(headed.ours.p99, echo.native.p99)} | ${spread(headed.floor.p99, 2)} |`);
      out(`| worst key, headed | ${fmt(headed.ours.max, 1)} | | | |`);
    }
    if (floor) {
      out();
      out(
        'Bare page: the same browser and the same keys into a page with nothing but a text area whose `keydown` ' +
          'sends one byte over a WebSocket to an echo server on loopback (Node, answering at once); the echo ' +
          'writes a character and the time is taken at the next animation frame (`bench/lib/floor.ts`). The text ' +
          'area takes keys as xterm.js\'s does (hidden, the key\'s default action prevented), so the key itself ' +
          'paints nothing and the cursor does not blink, as in the app by default. No app, ' +
          `SSH or tunnel: keydown → message back ${fmt(floor.roundTrip, 1)} ms, message → frame ${fmt(floor.toFrame, 1)} ms ` +
          '(medians). This is what this headless Chromium itself costs a key.' +
          (headed
            ? ` Headed (the same Chromium with a window on an Xvfb display, no GPU, so also the DOM renderer): ` +
              `keydown → message ${fmt(headed.floor.roundTrip, 1)} ms, message → frame ${fmt(headed.floor.toFrame, 1)} ms.`
            : ''),
      );
    }
    const parts = echo.ours.parts;
    if (parts && parts.samples > 0) {
      out();
      out(
        `Where a key's time goes in the page (medians over ${parts.samples} keys, ms): keydown → the app's WebSocket ` +
          `send ${fmt(parts.keyToSend, 1)}; send → first WebSocket message back (the browser's network stack, ` +
          `the service, the agent, sshd's echo and back) ${fmt(parts.roundTrip, 1)}; message → xterm.js write ` +
          `(decryption in WebAssembly) ${fmt(parts.messageToWrite, 1)}; write → painted frame ${fmt(parts.writeToPaint, 1)}.` +
          (parts.tail
            ? ` The slowest ${parts.tail.samples} keys (2%, the p99's neighbourhood; ${fmt(parts.tail.total, 1)} ms at their ` +
              `median): keydown → send ${fmt(parts.tail.keyToSend, 1)}, round trip ${fmt(parts.tail.roundTrip, 1)}, ` +
              `message → write ${fmt(parts.tail.messageToWrite, 1)}, write → painted frame ${fmt(parts.tail.writeToPaint, 1)}; ` +
              `the part that grows most over its median is ${tailGrowth(parts).text}.`
            : ''),
      );
    }
  } else out('Not measured: the figure failed (see the `cargo xtask bench` output).');
  out();

  // --- 3 -----------------------------------------------------------------------------------
  out('## 3. Throughput');
  out();
  if (throughput) {
    out(
      `Raw: \`head -c ${throughput.rawBytes} /dev/zero\` in the interactive shell; the page's terminal is switched to ` +
        'a counting mode (its `write` acknowledges the bytes at once without parsing or painting, so the SSH ' +
        'window keeps moving): SSH decryption in WebAssembly, the tunnel and the app\'s channel handling, no ' +
        'rendering. Timed from the Enter key to the end marker printed after the data. Native: ' +
        '`ssh -T … \'echo START; head -c … /dev/zero\'`, from START to the end of the output (no pty); and the ' +
        'same with `ssh -tt`, through a pty on the device as the page\'s shell is (a pty hands sshd at most 4 KiB ' +
        'per read, so it is the slower native path). The summary\'s ratio is against the faster, `-T`.',
    );
    out();
    out(
      `Rendered: \`cat\` of ${fmt(throughput.renderedMb, 0)} MB of base64 (76-column lines; ${fmt(throughput.renderedBytes / 1e6, 1)} MB ` +
        'reach the terminal with the pty\'s CR LF) into the terminal, timed from the Enter key to the frame after ' +
        'xterm.js parsed the end marker. During the output a key the shell never sees (Shift) is pressed every ' +
        '~100 ms; "input answered" is from that key event\'s time stamp to the next animation frame. Native ' +
        'reference: the same `cat` over `ssh -T` into /dev/null.',
    );
    out();
    out('| MB/s (10^6 bytes) | Ours | Native | Ratio |');
    out('| --- | --- | --- | --- |');
    out(`| Raw SSH channel | ${spread(throughput.ours.raw)} | ${spread(throughput.native.raw)} | ${ratio(throughput.ours.raw, throughput.native.raw)} |`);
    if (throughput.native.rawPty && ok(throughput.native.rawPty)) {
      out(
        `| Raw SSH channel, native through a pty (\`ssh -tt\`) | ${spread(throughput.ours.raw)} | ${spread(throughput.native.rawPty)} | ${ratio(throughput.ours.raw, throughput.native.rawPty)} |`,
      );
    }
    out(`| Rendered \`cat\` | ${spread(throughput.ours.rendered)} | ${spread(throughput.native.cat)} | ${ratio(throughput.ours.rendered, throughput.native.cat)} |`);
    out();
    out(
      `Input during rendered output: ${throughput.input.samples} keys, answered p50 ${fmt(throughput.input.p50, 0)} ms, ` +
        `p99 ${fmt(throughput.input.p99, 0)} ms, worst ${fmt(throughput.input.max, 0)} ms; longest main-thread task ` +
        `${fmt(throughput.longestTaskMs, 0)} ms.` +
        (throughput.rawWsMessageBytes && ok(throughput.rawWsMessageBytes)
          ? ` The raw output reached the page in tunnel WebSocket messages of ${kb(throughput.rawWsMessageBytes.median)} KB on average.`
          : ''),
    );
  } else out('Not measured: the figure failed (see the `cargo xtask bench` output).');
  out();

  // --- 4 -----------------------------------------------------------------------------------
  out('## 4. Bundle');
  out();
  if (bundle) {
    out(
      'Sizes of `dist/` (Trunk release build) in KB (1024 bytes): raw, and the gzip -9 and brotli q11 copies ' +
        '(Node\'s zlib) that `cargo xtask` writes beside each file after the build. `burrow serve` sends the ' +
        'brotli copy to browsers that accept it (all current ones), so the brotli column is what crosses the ' +
        'network. "Loaded" marks the files the page fetched on first load (its resource timing entries).',
    );
    out();
    out('| File | Loaded | Raw | gzip | brotli |');
    out('| --- | --- | --- | --- | --- |');
    for (const file of bundle.files) {
      const loaded = bundle.loaded.includes(file.name) ? 'yes' : '';
      out(`| \`${file.name}\` | ${loaded} | ${kb(file.raw)} | ${kb(file.gzip)} | ${kb(file.brotli)} |`);
    }
    out(`| **Everything the page loads** | | **${kb(bundle.total.raw)}** | **${kb(bundle.total.gzip)}** | **${kb(bundle.total.brotli)}** |`);
    if (bundle.session) {
      out(
        `| Fetched when a session starts (${bundle.session.files.map((f: string) => `\`${f}\``).join(', ')}) | | ` +
          `${kb(bundle.session.raw)} | ${kb(bundle.session.gzip)} | ${kb(bundle.session.brotli)} |`,
      );
    }
    out();
    if (bundle.session) {
      out(
        'The first screen is the connect form: it draws no terminal, so xterm.js and the addons a session needs ' +
          'are fetched when a session starts (the Connect click), in parallel with its first round trips, and the ' +
          'session machinery (SSH, key formats, ciphers: a WebAssembly module of its own) once the operator starts on ' +
          'the form (its first focus), so Connect does not wait for it; the ' +
          `search and WebGL addons on first use. First screen and session together: ${kb(bundle.total.brotli + bundle.session.brotli)} KB brotli.`,
      );
      out();
    }
    out(
      `First load to the interactive form (navigation start → the Connect button is in the page and enabled, i.e. ` +
        `the WebAssembly is compiled and the app mounted), over loopback: cold (a new browser context, empty cache) ` +
        `${spread(bundle.coldMs, 0)} ms; warm (reload, cached) ${spread(bundle.warmMs, 0)} ms.`,
    );
  } else out('Not measured: the figure failed (see the `cargo xtask bench` output).');
  out();

  // --- 5 -----------------------------------------------------------------------------------
  out('## 5. Service scale');
  out();
  if (scale) {
    out(
      'A load client (`bench/load`, Rust, on the same 2 cores, 2 runtime threads) opens N tunnels through the control plane and ' +
        'connects both ends of each itself over WebSockets (V3), with one stream (session) per tunnel. Each ' +
        `session sends a ${scale.payload}-byte message on average every ${scale.intervalMs} ms from the source, open-loop ` +
        '(Poisson send times per session, so sessions do not fire in lockstep and lateness does not thin the load); the destination ' +
        'echoes it. Latency is one hop through `burrow serve` (sender\'s write → receiver\'s read, one clock), ' +
        'so it also holds the client\'s own WebSocket work and both kernels\' loopback hops: an upper bound of what the service adds. ' +
        'Service time: `burrow serve` started with `BURROW_RELAY_TIMING=1` reads the monotonic clock when its reader has a ' +
        'peer\'s WebSocket message and again when the other peer\'s writer has handed the message carrying its frames to the ' +
        'socket, into a histogram (32 buckets per power of two, so figures are bucket upper bounds, at most ~3 % high) that the load ' +
        'client reads before and after the measured window (`GET /bench/relay-timing`). Both figures cover the same messages. Throughput: ' +
        'all N sources send 32 KiB messages as fast as the service takes them for 2 s. Memory: `VmRSS` of a fresh ' +
        '`burrow serve` before the tunnels and with all tunnels connected and idle, divided by N. `burrow serve` ' +
        'gets `--max-open-tunnels` (a hidden benchmark flag) since its default is AWS\'s quota of 100.',
    );
    out();
    const cores = scale.levels.some((l: any) => l.clientCores);
    out(
      '| Tunnels | Held | End to end p50 (ms) | End to end p99 (ms) | Service p50 (ms) | Service p99 (ms) | Service p99.9 (ms) | Relayed msg/s (offered) | serve CPU µs / msg |' +
        (cores ? ' CPU during echo, serve / client (cores) |' : '') +
        ' Bulk MB/s | serve CPU in bulk (cores) | RSS per idle tunnel (KiB) | serve RSS idle (MiB) |',
    );
    out(`| --- | --- | --- | --- | --- | --- | --- | --- | --- |${cores ? ' --- |' : ''} --- | --- | --- | --- |`);
    const serviceCell = (value: any) => (value && Number.isFinite(value.median) ? spread(value, 3) : '–');
    for (const level of scale.levels) {
      out(
        `| ${level.tunnels} | ${fmt(level.ready.median, 0)} | ${spread(level.p50, 2)} | ${spread(level.p99, 2)} | ` +
          `${serviceCell(level.serviceP50)} | ${serviceCell(level.serviceP99)} | ${serviceCell(level.serviceP999)} | ` +
          `${fmt(level.messagesPerS.median, 0)} (${fmt(level.offeredPerS.median, 0)}) | ` +
          `${level.messagesPerS.median >= 500 ? fmt(level.serveCpuPerMessageUs.median, 0) : '–'} | ` +
          (cores ? `${fmt(level.serveCores?.median, 2)} / ${fmt(level.clientCores?.median, 2)} | ` : '') +
          `${spread(level.bulkMbPerS, 0)} | ${fmt(level.serveCpuBulk.median, 2)} | ${fmt(level.rssPerTunnelKiB.median, 0)} | ` +
          `${fmt(level.rssIdleMiB.median, 1)} |`,
      );
    }
    const errors = scale.levels.filter((l: any) => l.firstError).map((l: any) => `${l.tunnels}: ${l.firstError}`);
    if (errors.length) {
      out();
      out(`Failures: ${errors.join('; ')}`);
    }
  } else out('Not measured: the figure failed (see the `cargo xtask bench` output).');
  out();

  lines.push(...sftpSection(input.sftp));
  lines.push(...typeaheadSection(input.typeahead));
  lines.push(...tabsSection(input.tabs));

  // --- Limits --------------------------------------------------------------------------------
  out('## What limits the figures that miss');
  out();
  const notes: string[] = [];
  if (bundle && (bundle.total?.brotli ?? 0) / 1024 >= 600) {
    const wasm = bundle.files.find((f: any) => f.name.endsWith('_bg.wasm'));
    notes.push(
      `Bundle: the first screen's WebAssembly is ${wasm ? kb(wasm.raw) : '?'} KB raw, ${wasm ? kb(wasm.brotli) : '?'} KB brotli, most of the page. ` +
        'It is built at opt-level "z" (ring and burrow-proto at 3), cut at its split points (xtask/src/split.rs: the ' +
        'session machinery is fetched when the operator starts on the form) and shrunk by wasm-opt -Oz. What the ' +
        'first screen keeps is the UI (Leptos) and whatever the UI itself calls into (the tabs\' and Files panel\'s ' +
        'SSH channels); another split point there is the next lever.',
    );
  }
  if (Number.isFinite(promptRatio) && promptRatio > 1.2 && prompt) {
    notes.push(
      `Time to prompt: ${ratio(prompt.ours.total, prompt.native)} native in total, ${ratio(prompt.ours.sshToPrompt, prompt.native)} for the SSH part. ` +
        'The page pays for the cookie helper and the tunnel WebSocket that the native path set up before `ssh` started; ' +
        'the rest is key exchange and authentication in WebAssembly.',
    );
  }
  if (echo && echoP50 > 8) {
    const parts = echo.ours.parts ?? {};
    notes.push(
      `Echo latency: of a key's ${fmt(echoP50, 1)} ms (p50), the app's own work is small (keydown → send ` +
        `${fmt(parts.keyToSend, 1)} ms, decryption → write ${fmt(parts.messageToWrite, 1)} ms). The rest is the WebSocket ` +
        `round trip as the page sees it (${fmt(parts.roundTrip, 1)} ms) and xterm.js painting in the next animation ` +
        `frame (${fmt(parts.writeToPaint, 1)} ms; a 60 Hz frame alone is up to 16.7 ms). Native's whole pty round trip ` +
        `over the same service and agents is ${fmt(echo.native.p50.median, 2)} ms.` +
        (echo.floor
          ? ` The bare page above shows the browser alone: ${fmt(echo.floor.p50.median, 1)} ms p50 and ` +
            `${fmt(echo.floor.p99.median, 1)} ms p99 from key to frame with an echo server that answers at once.`
          : ''),
    );
  }
  const tail = echo?.ours?.parts?.tail;
  if (echo && echoP99 > 16) {
    const parts = echo.ours.parts ?? {};
    notes.push(
      `Echo latency p99: ${fmt(echoP99, 1)} ms.` +
        (tail
          ? ` In the slowest 2% of keys (${fmt(tail.total, 1)} ms at their median) the part that grows most is ` +
            `${tailGrowth(parts).text}; the app's own work in them is ${fmt(tail.keyToSend + tail.messageToWrite, 1)} ms ` +
            `(keydown → send, decryption) and the round trip ${fmt(tail.roundTrip, 1)} ms.`
          : '') +
        (tail && tailGrowth(parts).key === 'writeToPaint'
          ? ' The display refreshes at 60 Hz: an echo written just after a frame began is painted with the next one, up ' +
            `to 16.7 ms later, and a p99 of 16 ms on top of a ${fmt(tail.roundTrip, 1)} ms round trip leaves no room for ` +
            'that wait. Nothing in the page changes between the key and the echo (no other render, no DOM change: ' +
            'checked while building this benchmark), so no frame is taken from the echo; running xterm.js\'s renderer ' +
            'inside the write would change the DOM sooner, and the pixels would still appear at the next refresh.'
          : '') +
        (echo.floor
          ? ` The bare page, which paints its echo in the next animation frame too, has a p99 of ${fmt(echo.floor.p99.median, 1)} ms` +
            (echo.floor.p99.median > 16
              ? ` in the same run: above the target itself, so in this browser not even a page with no app, SSH or ` +
                `tunnel paints 99% of its echoes within 16 ms.`
              : `.`)
          : ''),
    );
  }
  if (throughput && Number.isFinite(rawRatio) && rawRatio < 0.7) {
    notes.push(
      `Raw throughput: ${fmt(throughput.ours.raw.median)} MB/s against ${fmt(throughput.native.raw.median)} MB/s native: ` +
        'the page decrypts ChaCha20-Poly1305 (the app\'s first choice, since WebAssembly has no AES instructions) in ' +
        'WebAssembly on the same main thread that runs the SSH state machine, the tunnel and the page, and every chunk ' +
        'crosses into JavaScript; native OpenSSH runs its crypto natively with vector instructions, in a process of ' +
        'its own. A trace of the renderer\'s main thread during this transfer (`BENCH_TRACE=1`), taken while building ' +
        'this benchmark, showed it about 86% busy: half of the time in the app\'s JavaScript and WebAssembly ' +
        '(ChaCha20 alone 13–17%), a fifth in Chromium delivering the WebSocket messages, the rest in rendering and ' +
        'garbage collection. A WebAssembly SIMD build was tried and was not faster. Running the SSH session in a Web ' +
        'Worker, off the main thread, is the lever left. The page also grants each channel only ' +
        `${pageWindowKib()} KiB of SSH ` +
        'window (`app/src/ssh/client.rs`), so that a key\'s echo queues behind little output (figure 8: with 2 MiB ' +
        'a key beside two busy tabs waited 205–370 ms at p99); in a side-by-side run taken while choosing the window, ' +
        '2 MiB carried about 1.5× what 256 KiB did (40 against 27 MB/s, in the same minutes). ' +
        'The browser\'s renderer, its network process, sshd, the ' +
        'agent and the service share the 2 cores.',
    );
  }
  const sftp = input.sftp;
  const sftpMiss = sftp ? sftpFree(sftp).filter((way) => way.ratio < 0.7).map((way) => way.dir) : [];
  if (sftpMiss.length) {
    notes.push(
      `SFTP without the tunnel limit (${sftpMiss.join(' and ')} below 0.7× native): ${fmt(sftp.free.download.median)} MB/s ` +
        `down and ${fmt(sftp.free.upload.median)} MB/s up against native's ${fmt(sftp.free.nativeDownload.median)} and ` +
        `${fmt(sftp.free.nativeUpload.median)}. Every byte is encrypted or decrypted in WebAssembly on the page's one ` +
        'thread, as for the raw channel above (the page\'s CPU during the transfers is in figure 6); at the 800 KB/s ' +
        'AWS allows a tunnel, the page keeps up (figure 6\'s limited rows).' +
        sftpCpuNote(sftp),
    );
  }
  if (throughput && Number.isFinite(rendered) && rendered < 40) {
    notes.push(
      `Rendered output: ${fmt(rendered)} MB/s, below the raw channel's ${fmt(throughput.ours.raw.median)} MB/s: xterm.js ` +
        'parses every byte on the same main thread that decrypts, and the headless browser without a GPU draws with ' +
        'the DOM renderer: in a trace of this figure the main thread was 95% busy, a third of it in xterm.js\'s ' +
        'parser and two fifths in drawing (the DOM renderer\'s frames, style, layout and paint in software). A GPU ' +
        'and the WebGL renderer take most of the drawing away; the parser stays. The app acknowledges SSH window ' +
        'space only after xterm.js has parsed a chunk, so output never queues up unbounded in the page.',
    );
  }
  if (throughput && Number.isFinite(inputMax) && inputMax > 100) {
    notes.push(
      `Input during output: answered within ${fmt(throughput.input.p50, 0)} ms at the median but ${fmt(throughput.input.p99, 0)} ms ` +
        `at p99 and ${fmt(inputMax, 0)} ms at worst; the longest main-thread task was ${fmt(throughput.longestTaskMs, 0)} ms. ` +
        'xterm.js parses in time-sliced tasks, so tasks that long mean the renderer was kept from running (the machine ' +
        `was at load ${throughput.load?.[0] ?? '?'} on 2 cores at the end of this figure) or one WebAssembly call handled a large batch of ` +
        'SSH packets at once; a per-call byte budget in the app\'s receive loop would bound the second.',
    );
  }
  const topServiceP99 = top?.serviceP99?.median;
  if (top && !(topServiceP99 <= 2)) {
    notes.push(
      Number.isFinite(topServiceP99)
        ? `Service time at ${top.tunnels} tunnels: p99 ${fmt(topServiceP99, 2)} ms from a message's receipt to its forward in ` +
            `\`burrow serve\` (p50 ${fmt(top.serviceP50.median, 3)} ms).`
        : `Service time at ${top.tunnels} tunnels: not measured (the service's histogram was not readable).`,
    );
  }
  if (top && Number.isFinite(topServiceP99) && top.p99.median > 2) {
    notes.push(
      `End to end at ${top.tunnels} tunnels: p99 ${fmt(top.p99.median, 2)} ms one hop, of which the service's own time is ` +
        `${fmt(topServiceP99, 2)} ms at p99. The rest lies outside the relay's code path: the load client (2 runtime threads ` +
        `on the same 2 cores as the service, driving ${2 * top.tunnels} WebSockets and stamping each message only when its ` +
        'task runs), the two loopback TCP hops, and the wait between a socket becoming readable and the service\'s reader ' +
        'task running (the service clock starts when the reader has the message). The machine\'s load at the end of ' +
        `this figure was ${scale.load?.[0] ?? '?'} on 2 cores.`,
    );
  }
  if (notes.length === 0) notes.push('Every target measured in this run was met.');
  if (top && Number.isFinite(top.rssPerTunnelKiB?.median)) {
    notes.push(
      `Memory (no target): ${fmt(top.rssPerTunnelKiB.median, 0)} KiB per idle tunnel: two peer connections, each with ` +
        'its WebSocket buffers (the read buffer is 16 KiB, down from tungstenite\'s 128 KiB default, and grows only ' +
        'when a large message arrives), its tasks and its frame queue.',
    );
  }
  for (const note of notes) out(`- ${note}`);
  out();
  return lines.join('\n');
}

/** The SFTP figure's rows in the summary table. */
export function sftpSummary(sftp: any): string[] {
  if (!sftp) return ['| 6. SFTP | failed | | | ≥ 0.7× native; ≥ 0.95× the tunnel limit | not measured |'];
  const rows: string[] = [];
  for (const { dir, ours, native, ratio: r } of sftpFree(sftp)) {
    rows.push(
      `| 6. SFTP ${dir}, ${fmt(sftp.bytes / 1e6, 0)} MB (MB/s) | ${spread(ours)} | ${spread(native)} | ${ratio(ours, native)} | ≥ 0.7× native | ${met(Number.isFinite(r) ? r >= 0.7 : null)} |`,
    );
  }
  for (const [dir, ours, native] of [
    ['download', sftp.limited.download, sftp.limited.nativeDownload],
    ['upload', sftp.limited.upload, sftp.limited.nativeUpload],
  ] as const) {
    const share = ok(ours) ? ours.median / sftp.limitMbPerS : NaN;
    rows.push(
      `| 6. SFTP ${dir} at ${sftp.limit} per tunnel (MB/s) | ${spread(ours, 2)} | ${spread(native, 2)} | ${ratio(ours, native)} | ≥ 0.95× the limit | ${met(Number.isFinite(share) ? share >= 0.95 : null)} |`,
    );
  }
  const keys = sftp.limited.keys;
  if (keys && keys.samples > 0) {
    rows.push(
      `| 6. Keys answered during a download at ${sftp.limit} (ms, p99) | ${fmt(keys.p99, 0)} | – | – | ≤ 100 ms | ${met(keys.p99 <= 100)} |`,
    );
  }
  return rows;
}

/** The parts of the path in the CPU table, as the report names them (bench/lib/cpu.ts). */
const CPU_PARTS: Array<[string, string]> = [
  ['chromiumRenderer', "Chromium's renderer (the page's main thread and its other threads)"],
  ['chromiumNetwork', "Chromium's network service (the WebSocket)"],
  ['chromiumBrowser', "Chromium's browser process (among others the saved file's writes)"],
  ['chromiumOther', "Chromium's other processes (GPU, storage, zygotes)"],
  ['service', '`burrow serve`'],
  ['agents', '`burrow agent` (destination; and native\'s source)'],
  ['sshd', 'sshd and its sftp-server'],
  ['rest', 'the rest (native\'s ssh client, the bench, the kernel)'],
];

/** The machine's milliseconds of CPU per MB in a transfer's parts, or NaN when not measured. */
function perMbTotal(parts: any): number {
  return parts && Number.isFinite(parts.total) ? parts.total : NaN;
}

/** The cores 0.7× native would keep busy at ours' CPU per MB, each way, and the machine's cores. */
function sftpCoresNeeded(sftp: any): { down: number; up: number; cores: number } {
  const f = sftp.free;
  // rate (MB/s) × ms of CPU per MB = ms of CPU per second, in cores once divided by 1000
  const need = (ours: any, native: any) => (0.7 * (native?.median ?? NaN) * perMbTotal(ours)) / 1000;
  return { down: need(f.downloadParts, f.nativeDownload), up: need(f.uploadParts, f.nativeUpload), cores: sftp.cores ?? NaN };
}

/** The SFTP limits note's sentence on CPU per MB (figure 6's table), or "" when not measured. */
function sftpCpuNote(sftp: any): string {
  const f = sftp.free;
  const { down, up, cores } = sftpCoresNeeded(sftp);
  if (!Number.isFinite(down) || !Number.isFinite(up)) return '';
  const d = f.downloadParts;
  const browserOutsidePage = d.chromiumNetwork + d.chromiumBrowser + d.chromiumOther;
  return (
    ` Per MB moved, the machine spends ${fmt(d.total, 1)} ms of CPU on our download and ${fmt(f.uploadParts.total, 1)} ms ` +
    `on our upload, against ${fmt(f.nativeDownloadParts.total, 1)} and ${fmt(f.nativeUploadParts.total, 1)} for native's ` +
    `whole path; of our download's, ${fmt(browserOutsidePage, 1)} ms are Chromium's processes outside the page (its ` +
    `network service and browser process), ${fmt(d.chromiumRenderer, 1)} ms the page's renderer. At that cost 0.7× ` +
    `native would keep ${fmt(down, 1)} cores busy downloading and ${fmt(up, 1)} uploading; the machine has ${fmt(cores, 0)}.`
  );
}

/**
 * The CPU table under the SFTP figure: milliseconds of CPU per MB moved, by part of the path,
 * ours and native's, and the cores the 0.7× target would need at ours' cost.
 */
function cpuPartsTable(sftp: any): string[] {
  const f = sftp.free;
  if (!f.downloadParts || !f.nativeDownloadParts) return [];
  const cell = (parts: any, key: string) => fmt(parts?.[key], 1);
  const lines = [
    `Where the machine's CPU goes: milliseconds of CPU time per MB moved (medians of the runs). Each process's own CPU ` +
      `time (\`/proc/<pid>/stat\`) is read every 20 ms during the transfer, so native's sshd session, which ends with ` +
      `each \`sftp\`, counts too (\`bench/lib/cpu.ts\`); native's login is taken off. The rest is the machine's busy ` +
      `time (\`/proc/stat\`) less the parts.`,
    '',
    '| CPU per MB (ms) | Download, ours | Download, native | Upload, ours | Upload, native |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const [key, name] of CPU_PARTS) {
    lines.push(
      `| ${name} | ${cell(f.downloadParts, key)} | ${cell(f.nativeDownloadParts, key)} | ${cell(f.uploadParts, key)} | ${cell(f.nativeUploadParts, key)} |`,
    );
  }
  lines.push(
    `| **The machine** | ${cell(f.downloadParts, 'total')} | ${cell(f.nativeDownloadParts, 'total')} | ${cell(f.uploadParts, 'total')} | ${cell(f.nativeUploadParts, 'total')} |`,
    '',
  );
  const { down, up, cores } = sftpCoresNeeded(sftp);
  if (Number.isFinite(down) && Number.isFinite(up)) {
    const short = [down, up].filter((n) => n > cores * 0.95);
    lines.push(
      `At ours' cost per MB, 0.7× native (${fmt(0.7 * f.nativeDownload.median, 0)} MB/s down, ` +
        `${fmt(0.7 * f.nativeUpload.median, 0)} up) would keep ${fmt(down, 1)} cores busy downloading and ` +
        `${fmt(up, 1)} uploading; this machine has ${fmt(cores, 0)}. ` +
        (short.length > 0
          ? `So on this machine the target needs less CPU per MB, not only more parallel work.`
          : `So the machine could carry it: what holds the transfer back is the pace of the path, not its cost.`),
      '',
    );
  }
  return lines;
}

/** The SSH window the app grants each channel, in KiB, once read from its source. */
let windowKib: number | undefined;

/** The SSH window the app grants each channel, in KiB, read from its source (NaN if not found). */
function pageWindowKib(): number {
  if (windowKib === undefined) {
    try {
      const source = fs.readFileSync(path.join(__dirname, '..', '..', 'app', 'src', 'ssh', 'client.rs'), 'utf8');
      const found = /pub const WINDOW_SIZE: u32 = (\d+) \* 1024;/.exec(source);
      windowKib = found ? Number(found[1]) : NaN;
    } catch {
      windowKib = NaN;
    }
  }
  return windowKib;
}

/** Whether a run measured the far case (the limit across a long round trip). */
function hasFar(sftp: any): boolean {
  return Boolean(sftp.far && sftp.far.download?.values?.length && sftp.far.upload?.values?.length);
}

/** The limited table's rows for the far case, if measured. */
function farRows(sftp: any): string[] {
  if (!hasFar(sftp)) return [];
  const far = sftp.far;
  const row = (way: string, ours: any, native: any, cpu: any) =>
    `| ${way}, ${sftp.farRttMs} ms round trip (1 run) | ${spread(ours, 2)} | ${spread(native, 2)} | ` +
    `${fmt(ours.median / sftp.limitMbPerS, 2)}× | ${spread(cpu, 2)} |`;
  return [
    row('Download', far.download, far.nativeDownload, far.downloadCpu),
    row('Upload', far.upload, far.nativeUpload, far.uploadCpu),
  ];
}

/** What the far case shows, when a direction falls short of 0.95× the limit. */
function farNote(sftp: any): string[] {
  if (!hasFar(sftp)) return [];
  const far = sftp.far;
  const share = (r: any) => r.median / sftp.limitMbPerS;
  const short = [
    ['download', far.download, far.nativeDownload],
    ['upload', far.upload, far.nativeUpload],
  ].filter(([, ours]) => share(ours) < 0.95);
  const lines = [
    `The far rows put a forwarder that holds every byte ${fmt(sftp.farRttMs / 2, 0)} ms each way between the device's agent ` +
      `and sshd (\`e2e/support/delay.ts\`), as far as a device on a cellular link.`,
  ];
  for (const [way, ours, native] of short as Array<[string, any, any]>) {
    // russh tops a channel's window up once half of it is used: about 0.75 of it per round trip.
    const windowRate = (0.75 * pageWindowKib() * 1024) / (sftp.farRttMs / 1000) / 1e6;
    lines.push(
      ` Our ${way} reaches ${fmt(share(ours), 2)}× of the limit there (native's ${fmt(share(native), 2)}×)` +
        (way === 'download'
          ? `: one channel carries at most the SSH window the page grants per round trip (${pageWindowKib()} KiB, ` +
            `\`app/src/ssh/client.rs\`; topped up once half is used, about ${fmt(windowRate, 2)} MB/s at ` +
            `${fmt(sftp.farRttMs, 0)} ms), and native's window is 2 MiB. The smaller window keeps keys answered beside busy ` +
            `tabs (figure 8); russh grants every channel the same one.`
          : '.'),
    );
  }
  return [lines.join(''), ''];
}

/** "ours / native" machine CPU shares, as percentages; a dash where a run lacks them. */
function machinePair(ours: any, native: any): string {
  const pct = (r: any) => (r && Number.isFinite(r.median) ? `${fmt(r.median * 100, 0)}%` : '–');
  return `${pct(ours)} / ${pct(native)}`;
}

/** The SFTP figure's section. */
export function sftpSection(sftp: any): string[] {
  const lines: string[] = ['## 6. SFTP (Files panel)', ''];
  if (!sftp) return [...lines, 'Not measured: the figure failed (see the `cargo xtask bench` output).', ''];
  lines.push(
    `Ours: the Files panel, logged in, its SFTP channel open on the shell's connection; from the click on a row's download ` +
      `button (or a file dropped onto the panel) to the transfer row saying done, on the page's clock. Downloads are written ` +
      `through the File System Access API into the origin-private file system (headless Chromium cannot answer the save ` +
      `dialog); uploads read a ${fmt(sftp.bytes / 1e6, 0)} MB \`File\` made in the page. Native: OpenSSH's \`sftp -b\` (64 requests of ` +
      `32 KiB in flight) through a source agent, its login timed alone and subtracted. Page CPU: the main thread's busy time ` +
      `(DevTools \`TaskDuration\`) over the transfer's wall time. Machine CPU: the share of all ${sftp.cores ?? '?'} cores busy ` +
      `(\`/proc/stat\`) during the transfer, the page's and native's (native's includes its login).`,
    '',
    `| ${fmt(sftp.bytes / 1e6, 0)} MB, no rate limit | Ours (MB/s) | Native (MB/s) | Ratio | Page CPU (main thread) | Machine CPU, ours / native |`,
    '| --- | --- | --- | --- | --- | --- |',
    `| Download | ${spread(sftp.free.download)} | ${spread(sftp.free.nativeDownload)} | ${ratio(sftp.free.download, sftp.free.nativeDownload)} | ${spread(sftp.free.downloadCpu, 2)} | ${machinePair(sftp.free.downloadMachine, sftp.free.nativeDownloadMachine)} |`,
    `| Upload | ${spread(sftp.free.upload)} | ${spread(sftp.free.nativeUpload)} | ${ratio(sftp.free.upload, sftp.free.nativeUpload)} | ${spread(sftp.free.uploadCpu, 2)} | ${machinePair(sftp.free.uploadMachine, sftp.free.nativeUploadMachine)} |`,
    '',
    ...cpuPartsTable(sftp),
    `With \`burrow serve --rate-limit-per-tunnel ${sftp.limit}\` (both directions together, what AWS allows one tunnel), ` +
      `${fmt(sftp.limitedBytes / 1e6, 0)} MB each way, ${sftp.limitedRuns} runs:`,
    '',
    `| ${fmt(sftp.limitedBytes / 1e6, 0)} MB at ${sftp.limit} | Ours (MB/s) | Native (MB/s) | Share of the limit (ours) | Page CPU (main thread) |`,
    '| --- | --- | --- | --- | --- |',
    `| Download | ${spread(sftp.limited.download, 2)} | ${spread(sftp.limited.nativeDownload, 2)} | ${fmt(sftp.limited.download.median / sftp.limitMbPerS, 2)}× | ${spread(sftp.limited.downloadCpu, 2)} |`,
    `| Upload | ${spread(sftp.limited.upload, 2)} | ${spread(sftp.limited.nativeUpload, 2)} | ${fmt(sftp.limited.upload.median / sftp.limitMbPerS, 2)}× | ${spread(sftp.limited.uploadCpu, 2)} |`,
    ...farRows(sftp),
    '',
    ...farNote(sftp),
    `Load at the end of the figure: ${sftp.load?.join(' / ') ?? '?'}.`,
    '',
  );
  const keyRow = (label: string, keys: any) =>
    keys && keys.samples > 0
      ? `| ${label} | ${keys.samples} | ${fmt(keys.p50, 0)} | ${fmt(keys.p99, 0)} | ${fmt(keys.max, 0)} |`
      : `| ${label} | 0 | – | – | – |`;
  lines.push(
    `Keys answered during a download: one more download of the same file (not timed), while keys are typed into the shell ` +
      `one at a time, each after the previous one's echo, for as long as the download runs; from the key's \`keydown\` to ` +
      `the frame that paints its echo (the hooks of figure 2). Transfers keep as much in flight as a delay-based limit ` +
      `allows (\`app/src/ssh/pacing.rs\`): about what the tunnel carries (the largest rate an answer showed in the last ` +
      `250 ms) in its shortest round trip plus 25 ms, up to OpenSSH's 64 requests of 32 KiB.`,
    '',
    '| Download | Keys | p50 (ms) | p99 (ms) | Worst (ms) |',
    '| --- | --- | --- | --- | --- |',
    keyRow('No rate limit', sftp.free.keys),
    keyRow(`At ${sftp.limit}`, sftp.limited.keys),
    '',
  );
  const freeRatio = Math.min(
    sftp.free.download.median / sftp.free.nativeDownload.median,
    sftp.free.upload.median / sftp.free.nativeUpload.median,
  );
  if (Number.isFinite(freeRatio) && freeRatio < 0.7) {
    const machine = Math.max(sftp.free.downloadMachine?.median ?? NaN, sftp.free.uploadMachine?.median ?? NaN);
    const saturated = Number.isFinite(machine) && machine >= 0.95;
    lines.push(
      `Below 0.7× native without a limit. The page's main thread is busy ${fmt(sftp.free.downloadCpu.median * 100, 0)}% ` +
        `(download) and ${fmt(sftp.free.uploadCpu.median * 100, 0)}% (upload) of the transfer, ` +
        (!Number.isFinite(machine)
          ? `of the transfer (this run did not measure the machine's CPU). `
          : saturated
          ? `and the machine's cores are all busy (${fmt(machine * 100, 0)}%): the page's work (ChaCha20-Poly1305 and russh's ` +
            `framing in WebAssembly) and the path's (the service, the agent, sshd, Chromium's network process) together take ` +
            `what the machine has. `
          : `the machine's cores at most ${fmt(machine * 100, 0)}%: neither is saturated, so part of the time the page waits ` +
            `on a round trip. A download's answers are held to the SSH window the page grants each channel (${pageWindowKib()} KiB, ` +
            `\`app/src/ssh/client.rs\`), and each window's worth waits for the next through the service, the agent and ` +
            `sshd, which share the machine's cores with the page and stretch when it is busy (the load above). `) +
        `A CPU profile of the page (\`BENCH_PROFILE=1\`) shows where its busy time goes. With the tunnel's limit on, the page keeps up ` +
        `with the limit at ${fmt(Math.max(sftp.limited.downloadCpu.median, sftp.limited.uploadCpu.median) * 100, 0)}% of its ` +
        `main thread or less.`,
      '',
    );
  }
  return lines;
}

/** Summary rows of figure 7 (typeahead). */
export function typeaheadSummary(t: any): string[] {
  if (!t) return ['| 7. Typeahead | failed | | | ≤ 25 ms p50 at 150 ms; ≤ 8 ms at 0 ms | not measured |'];
  const rows: string[] = [];
  for (const [rtt, target] of [['150', 25], ['0', 8]] as Array<[string, number]>) {
    const r = t.rtts[rtt];
    if (!r) continue;
    rows.push(
      `| 7. Displayed echo p50 at ${rtt} ms round trip (ms) | ${spread(r.ours.p50, 2)} | ${spread(r.native.p50, 2)} | ${ratio(r.ours.p50, r.native.p50)} | ≤ ${target} ms | ${met(ok(r.ours.p50) ? r.ours.p50.median <= target : null)} |`,
    );
  }
  const all = Object.values(t.rtts) as any[];
  const differ = all.filter((r) => !r.correctness.screensEqual).length;
  const leaks = all.reduce((n, r) => n + r.correctness.leaksOn + r.correctness.leaksOff, 0);
  rows.push(`| 7. Scripted sessions whose final screen differs (typeahead on vs off) | ${differ} of ${all.length} | – | – | 0 | ${met(differ === 0)} |`);
  rows.push(`| 7. Frames showing the password | ${leaks} | – | – | 0 | ${met(leaks === 0)} |`);
  return rows;
}

/** Section 7 (typeahead). */
export function typeaheadSection(t: any): string[] {
  const lines = ['## 7. Typeahead on slow links', ''];
  if (!t) return [...lines, 'Not measured: the figure failed (see the `cargo xtask bench` output).', ''];
  lines.push(
    `A forwarder between the destination agent and sshd holds every byte for half the round trip each way (\`e2e/support/delay.ts\`; at 0 ms it forwards at once, adding no timer). ` +
      `Ours: the app with the default setting (typeahead *auto*); ${t.keys} keystrokes per run into bash's prompt, one at a time, each ` +
      'typed once the previous one is displayed (the line is cleared with Ctrl-U every 50 keys, then a pause); displayed echo is from the ' +
      "`keydown` to the first xterm.js render with the cursor moved, predicted or echoed. Native: `ssh -tt` through a source agent and the " +
      'same delay, from writing the key to its pty to reading the echo (no painting); its echo is the round trip. Time to prompt: ' +
      'ours from the Connect click, native from starting `ssh`.',
    '',
    '| Round trip (ms) | Displayed p50 ours (ms) | p99 ours | Native echo p50 | Native p99 | Time to prompt ours (ms) | Native |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const [rtt, r] of Object.entries(t.rtts) as Array<[string, any]>) {
    lines.push(
      `| ${rtt} | ${spread(r.ours.p50, 2)} | ${spread(r.ours.p99, 2)} | ${spread(r.native.p50, 2)} | ${spread(r.native.p99, 2)} | ${spread(r.ours.prompt, 0)} | ${spread(r.native.prompt, 0)} |`,
    );
  }
  lines.push(
    '',
    'Correctness: a scripted session typed at 80 ms a key without waiting for echoes (`rm; clear`, `echo` with three backspaces, ' +
      "a `read -s` password, `vi` insert and `:wq`, `cat` of the file), once with typeahead *always* and once *off*; every rendered frame " +
      "is checked for the password's first two characters.",
    '',
    '| Round trip (ms) | Final screens equal | Frames with the password (on / off) |',
    '| --- | --- | --- |',
  );
  for (const [rtt, r] of Object.entries(t.rtts) as Array<[string, any]>) {
    lines.push(`| ${rtt} | ${r.correctness.screensEqual ? 'yes' : '**no**'} | ${r.correctness.leaksOn} / ${r.correctness.leaksOff} |`);
  }
  lines.push('');
  return lines;
}
