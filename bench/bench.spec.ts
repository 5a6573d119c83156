// Burrow's benchmarks: the browser app against native OpenSSH, side by side in one run.
//
// Ours: Debian's Chromium → the app (russh in WebAssembly, xterm.js) → `burrow serve` →
// destination `burrow agent` → OpenSSH sshd. Native: OpenSSH's `ssh` (sshpass for the
// password) → source `burrow agent` → the same `burrow serve` → destination agent → the same
// sshd. Every figure runs `RUNS` times and is written to results/<figure>.json; the last step
// turns them into BENCHMARKS.md at the repository root. These are measurements, not tests:
// nothing asserts a timing, a figure only fails when it could not be measured at all.
//
// `cargo xtask bench` builds what this needs and runs it. Knobs (environment): BENCH_RUNS (5),
// BENCH_KEYS (500), BENCH_RAW_MB (100), BENCH_RENDERED_MB (100), BENCH_SCALE (1,100,1000),
// BENCH_SFTP_MB (100), BENCH_SFTP_LIMITED_MB (20; 0 leaves the limited half out), BENCH_TYPEAHEAD_KEYS (200), BENCH_RTTS (0,50,150,300), BENCH_TABS_MB (30), BENCH_PROFILE (1: also write a CPU profile of each page transfer to results/*.cpuprofile),
// BENCH_TRACE (1: also write a Chromium trace of each page transfer to results/*-trace-N.json),
// BENCH_SFTP_COMPARE_DIST (a second build of the app: `-g "sftp compare"` runs the SFTP figure's
// unlimited half for BURROW_DIST and this build in turns, each round with its own native run).
// BENCH_ONLY (figures to run, e.g. `echo,typeahead`; `cargo xtask bench` turns it into a --grep,
// and the report keeps the other figures from the BENCHMARKS.md it replaces: lib/carry.ts).
import { test as base, BrowserContext } from '@playwright/test';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BurrowService, BURROW_BIN, DIST_DIR, REPO_ROOT, startAgent } from '../e2e/support/burrow';
import { Proc, runQuiet, start } from '../e2e/support/process';
import { Sshd, TestUser, prepareTestUser, removeTestUserFiles } from '../e2e/support/sshd';
import { Delay } from '../e2e/support/delay';
import { installHooks } from './lib/hooks';
import { formatSelfTime, topSelfTime } from './lib/profile';
import { measureFloor } from './lib/floor';
import { QuietPage } from './lib/quiet';
import { renderReport } from './lib/report';
import { carryOver, onlyFigures } from './lib/carry';
import { percentile, runs } from './lib/stats';
import { CpuWatch, PerMb, cpuMinus, machineBusy, msPerMb, partMedians } from './lib/cpu';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const KEYS = Number(process.env.BENCH_KEYS ?? 500);
const RAW_BYTES = Math.round(Number(process.env.BENCH_RAW_MB ?? 100) * 1e6);
const RENDERED_MB = Number(process.env.BENCH_RENDERED_MB ?? 100);
const SCALE = (process.env.BENCH_SCALE ?? '1,100,1000').split(',').map(Number);
/** With BENCH_PROFILE=1, each page transfer also writes a CPU profile to results/. */
const PROFILE = process.env.BENCH_PROFILE === '1';
/** With BENCH_TRACE=1, each page transfer also writes a Chromium trace to results/. */
const TRACE = process.env.BENCH_TRACE === '1';
const RESULTS = path.join(__dirname, 'results');
/** Typeahead figure: keys per round trip, and the round trips (ms) the delay forwarder makes. */
const TYPEAHEAD_KEYS = Number(process.env.BENCH_TYPEAHEAD_KEYS ?? 200);
const RTTS = (process.env.BENCH_RTTS ?? '0,50,150,300').split(',').map(Number);
/** Tabs figure: megabytes each of the two printing tabs prints. */
const TABS_MB = Number(process.env.BENCH_TABS_MB ?? 30);
const LOAD_BIN = process.env.BENCH_LOAD_BIN ?? path.join(REPO_ROOT, 'target', 'release', 'burrow-bench-load');
const NATIVE_PTY = path.join(__dirname, 'native_pty.py');
/** SFTP figure: bytes each way without a rate limit, and with the service's per-tunnel limit. */
const SFTP_BYTES = Math.round(Number(process.env.BENCH_SFTP_MB ?? 100) * 1e6);
const SFTP_LIMITED_BYTES = Math.round(Number(process.env.BENCH_SFTP_LIMITED_MB ?? 20) * 1e6);
/** What AWS IoT Secure Tunneling allows one tunnel, as the local service's limit. */
const SFTP_LIMIT = '800KB/s';
const SFTP_LIMIT_MB_PER_S = 0.8;
/** The round trip of the SFTP figure's far case (a cellular device: 100–300 ms are normal). */
const SFTP_FAR_RTT_MS = 300;
/** A second build of the app to compare with BURROW_DIST (the "sftp compare" figure). */
const SFTP_COMPARE_DIST = process.env.BENCH_SFTP_COMPARE_DIST ?? '';
/** The thing name every tunnel gets, so the app remembers the host key across tunnels. */
const THING = 'bench-device';
/** The marker printed after each transfer; the typed command shows `$((6*7))`, never `42`. */
const MARKER = 'BENCH-42-END';
const MARKER_COMMAND = 'echo BENCH-$((6*7))-END';
const PROMPT = (user: string) => `${user}@[^\\n]*[$#] ?$`;

/** One figure's results file. */
function save(name: string, data: unknown): void {
  fs.mkdirSync(RESULTS, { recursive: true });
  fs.writeFileSync(path.join(RESULTS, `${name}.json`), JSON.stringify(data, null, 2));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function load(): number[] {
  return os.loadavg().map((v) => Math.round(v * 100) / 100);
}

/** Everything the figures share in one worker: the test user, sshd, burrow serve, data. */
interface Rig {
  user: TestUser;
  sshd: Sshd;
  burrow: BurrowService;
  /** `bench-device <host key>`, the native client's known_hosts. */
  knownHosts: string;
  /** Folder with the files the remote shell cats (readable by the test user). */
  dataDir: string;
  /** The base64 file of about RENDERED_MB megabytes. */
  payload: string;
}

const test = base.extend<object, { rig: Rig }>({
  rig: [
    // eslint-disable-next-line no-empty-pattern
    async ({}, use) => {
      process.env.RUST_LOG = process.env.RUST_LOG ?? 'warn';
      const user = prepareTestUser();
      const sshd = await Sshd.start(user);
      const burrow = await BurrowService.start();
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'burrow-bench-data-'));
      fs.chmodSync(dataDir, 0o755);
      const knownHosts = path.join(dataDir, 'known_hosts');
      const hostKey = fs.readFileSync(path.join(sshd.dir, 'ssh_host_ed25519_key.pub'), 'utf8').trim();
      fs.writeFileSync(knownHosts, `${THING} ${hostKey}\n`);
      // base64 turns 3 bytes into 4 characters: RENDERED_MB megabytes of text, in 76-column lines.
      const payload = path.join(dataDir, 'payload.b64');
      const rawBytes = Math.round((RENDERED_MB * 1e6 * 3) / 4);
      runQuiet('sh', ['-c', `head -c ${rawBytes} /dev/urandom | base64 -w 76 > ${payload} && chmod 644 ${payload}`]);
      await use({ user, sshd, burrow, knownHosts, dataDir, payload });
      await burrow.stop();
      await sshd.stop();
      removeTestUserFiles(user);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
    { scope: 'worker' },
  ],
});

// ---------------------------------------------------------------------------------------------
// Tunnels, agents and the native client

/** Opens a tunnel to the bench device with one service, SSH. */
async function openTunnel(burrow: BurrowService): Promise<{ tunnelId: string; source: string; destination: string }> {
  const { status, json } = await burrow.control('OpenTunnel', {
    destinationConfig: { thingName: THING, services: ['SSH'] },
  });
  if (status !== 200) throw new Error(`OpenTunnel failed with ${status}: ${JSON.stringify(json)}`);
  return {
    tunnelId: String(json.tunnelId),
    source: String(json.sourceAccessToken),
    destination: String(json.destinationAccessToken),
  };
}

/** A tunnel with its destination agent in front of sshd, and optionally a source agent. */
interface Path {
  tunnelId: string;
  sourceToken: string;
  procs: Proc[];
  /** The source agent's local port (native path only). */
  port?: number;
}

async function openPath(
  rig: Rig,
  native: boolean,
  service: BurrowService = rig.burrow,
  device: string = rig.sshd.address,
): Promise<Path> {
  const tunnel = await openTunnel(service);
  const procs = [
    await startAgent({ endpoint: service.url, token: tunnel.destination, destinations: [`SSH=${device}`] }),
  ];
  let port: number | undefined;
  if (native) {
    const agent = start(BURROW_BIN, ['agent', '--mode', 'source', '-e', service.url, '-t', tunnel.source, '-s', 'SSH=0'], {
      name: 'burrow agent (source)',
      secrets: [tunnel.source],
      env: { RUST_LOG: process.env.RUST_LOG ?? 'warn' },
    });
    procs.push(agent);
    const listening = await agent.waitForLine(/listening on \S*:(\d+) for SSH/, 20_000);
    await agent.waitForLine(/burrow agent: connected/, 20_000);
    port = Number(listening[1]);
  }
  return { tunnelId: tunnel.tunnelId, sourceToken: tunnel.source, procs, port };
}

/** Like `openPath`, with a forwarder holding every byte `oneWayMs` each way between the destination agent and sshd. */
async function openDelayedPath(rig: Rig, native: boolean, oneWayMs: number): Promise<{ path: Path; delay: Delay }> {
  const delay = await Delay.start(rig.sshd.address, oneWayMs);
  return { path: await openPath(rig, native, rig.burrow, delay.address), delay };
}

async function closePath(rig: Rig, p: Path, service: BurrowService = rig.burrow): Promise<void> {
  for (const proc of p.procs.reverse()) await proc.stop();
  await service.control('CloseTunnel', { tunnelId: p.tunnelId });
}

/** `sshpass -e ssh …` arguments for the native client through a source agent's port. */
function sshCommand(rig: Rig, port: number, extra: string[]): string[] {
  return [
    'sshpass',
    '-e',
    'ssh',
    '-F',
    '/dev/null',
    '-o',
    `UserKnownHostsFile=${rig.knownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `HostKeyAlias=${THING}`,
    '-o',
    'PubkeyAuthentication=no',
    '-o',
    'PreferredAuthentications=password',
    '-o',
    'LogLevel=ERROR',
    '-p',
    String(port),
    ...extra,
    `${rig.user.name}@127.0.0.1`,
  ];
}

function sshEnv(rig: Rig): NodeJS.ProcessEnv {
  return { ...process.env, SSHPASS: rig.user.password, TERM: 'xterm-256color', LANG: 'C.UTF-8' };
}

/** Runs native_pty.py around `ssh -tt` and returns its JSON answer. */
async function nativePty(
  rig: Rig,
  port: number,
  options: { keys: number; cols: number; rows: number },
): Promise<{ prompt_ms: number; echo_ms?: number[] }> {
  const args = [
    NATIVE_PTY,
    '--prompt',
    `${rig.user.name}@[^\\r\\n]*[$#] `,
    '--keys',
    String(options.keys),
    '--cols',
    String(options.cols),
    '--rows',
    String(options.rows),
    '--',
    ...sshCommand(rig, port, ['-tt']),
  ];
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn('python3', args, { env: sshEnv(rig), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (err += chunk));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`native_pty.py failed (${code}): ${out}${err}`))));
  });
  return JSON.parse(output);
}

/**
 * Native `ssh -T … 'echo START; COMMAND'` (or `-tt`, through a pty on the device as the page's
 * shell is): megabytes per second from START to the end.
 */
async function nativeTransfer(
  rig: Rig,
  port: number,
  command: string,
  pty = false,
): Promise<{ bytes: number; mbPerS: number }> {
  return await new Promise((resolve, reject) => {
    const [program, ...args] = sshCommand(rig, port, [pty ? '-tt' : '-T']);
    const child = spawn(program, [...args, `echo START; ${command}`], {
      env: sshEnv(rig),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let started: number | null = null;
    let bytes = 0;
    let head = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => {
      if (started === null) {
        head += chunk.toString('latin1');
        // A pty turns the newline into CR LF.
        const found = /START\r?\n/.exec(head);
        if (!found) return;
        started = performance.now();
        bytes += head.length - found.index - found[0].length;
        return;
      }
      bytes += chunk.length;
    });
    child.stderr.on('data', (chunk) => (err += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const ended = performance.now();
      if (code !== 0 || started === null) {
        reject(new Error(`native transfer failed (${code}): ${err}`));
        return;
      }
      resolve({ bytes, mbPerS: bytes / (ended - started) / 1e3 });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The page

async function newContext(browser: import('@playwright/test').Browser): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  await context.addInitScript(installHooks);
  return context;
}

/** What one connect took, from the page's own clock (ms). */
interface ConnectTiming {
  total: number;
  cookie: number;
  websocket: number;
  handshake: number;
  auth: number;
  shell: number;
  prompt: number;
  /** From the SSH handshake's start to the prompt: the part native ssh also does. */
  sshToPrompt: number;
  hostKeyAsked: boolean;
}

/** Loads the app, fills the form, clicks Connect and waits for the shell prompt. */
async function connectPage(page: QuietPage, rig: Rig, token: string, base = rig.burrow.url): Promise<ConnectTiming> {
  await page.goto(`${base}/`);
  await page.waitForFunction(() => (window as any).__bench.interactiveAt !== null, null);
  // Token mode: the page opens Device mode once its probe finds the service's tunnel API.
  await page.waitForFunction(
    () => document.querySelector('[data-testid="connect-form"]')?.getAttribute('data-probed') === 'true',
    null,
  );
  await page.click('mode-token');
  await page.fill('token', token);
  await page.fill('username', rig.user.name);
  await page.fill('password', rig.user.password);
  await page.evaluate((source) => {
    const B = (window as any).__bench;
    B.promptSource = source;
    B.promptAt = null;
    B.phases = [];
    B.clickAt = null;
    B.watchStatus(true);
  }, PROMPT(rig.user.name));
  await page.click('connect');
  // The prompt, or first the host-key question (answered: the device's key is accepted).
  let hostKeyAsked = false;
  const deadline = Date.now() + 60_000;
  while (!(await page.evaluate(() => (window as any).__bench.promptAt !== null))) {
    if (Date.now() > deadline) {
      const shown = await page.evaluate(() =>
        ['status', 'error']
          .map((id) => document.querySelector(`[data-testid="${id}"]`)?.textContent?.trim())
          .filter(Boolean)
          .join(' | '),
      );
      throw new Error(`no shell prompt within 60 s of the connect click; the page shows: ${shown || 'nothing'}`);
    }
    if (!hostKeyAsked && (await page.isVisible('hostkey-accept'))) {
      hostKeyAsked = true;
      await page.click('hostkey-accept');
    }
    await sleep(20);
  }
  const state = await page.evaluate(() => {
    const B = (window as any).__bench;
    B.watchStatus(false);
    return { phases: B.phases as Array<{ label: string; t: number }>, clickAt: B.clickAt as number, promptAt: B.promptAt as number };
  });
  const at = (pattern: RegExp): number => state.phases.find((p) => pattern.test(p.label))?.t ?? NaN;
  const tunnel = at(/^Opening tunnel/);
  const handshake = at(/^SSH handshake/);
  const auth = at(/^Authenticating/);
  const shell = at(/^Starting shell/);
  const connected = at(/^Connected/);
  return {
    total: state.promptAt - state.clickAt,
    cookie: tunnel - state.clickAt,
    websocket: handshake - tunnel,
    handshake: auth - handshake,
    auth: shell - auth,
    shell: connected - shell,
    prompt: state.promptAt - connected,
    sshToPrompt: state.promptAt - handshake,
    hostKeyAsked,
  };
}

/** Types a command, arms the end marker, presses Enter and waits for the marker (raw) or its paint. */
/** Writes a CPU profile or trace to `results/NAME-N.EXT` (open it in Chromium's DevTools). */
function saveProfile(profile: unknown, name: string, ext = 'cpuprofile'): void {
  fs.mkdirSync(RESULTS, { recursive: true });
  let n = 0;
  while (fs.existsSync(path.join(RESULTS, `${name}-${n}.${ext}`))) n++;
  fs.writeFileSync(path.join(RESULTS, `${name}-${n}.${ext}`), JSON.stringify(profile));
  if (ext === 'cpuprofile') {
    fs.writeFileSync(path.join(RESULTS, `${name}-${n}.top.txt`), `${formatSelfTime(topSelfTime(profile, 40))}\n`);
  }
}

async function pageTransfer(
  page: QuietPage,
  command: string,
  raw: boolean,
): Promise<{
  bytes: number;
  mbPerS: number;
  inputDelays: number[];
  longTasks: number[];
  renders: number;
  /** Mean size of the tunnel WebSocket messages that carried the output (bytes). */
  wsMessageSize: number;
}> {
  await page.type(`${command}; ${MARKER_COMMAND}`);
  await sleep(300);
  await page.evaluate(
    ([marker, raw]) => {
      const B = (window as any).__bench;
      Object.assign(B, {
        marker,
        raw,
        tail: '',
        bytes: 0,
        markerAt: null,
        markerBytes: 0,
        parsedAt: null,
        paintedAt: null,
        enterAt: null,
        inputDelays: [],
        longTasks: [],
        renders: 0,
        wsMessages: 0,
        wsBytes: 0,
      });
    },
    [MARKER, raw] as const,
  );
  const stopProfile = PROFILE ? await page.startProfile() : null;
  const stopTrace = TRACE ? await page.startTrace() : null;
  await page.press('Enter');
  const deadline = Date.now() + 300_000;
  for (;;) {
    const done = await page.evaluate((raw) => {
      const B = (window as any).__bench;
      return raw ? B.markerAt !== null : B.paintedAt !== null;
    }, raw);
    if (done) break;
    if (Date.now() > deadline) throw new Error('the transfer did not finish within 5 minutes');
    // A key the shell never sees: the page's answer time to input during the output.
    if (!raw) await page.press('Shift');
    await sleep(100);
  }
  if (stopProfile) saveProfile(await stopProfile(), raw ? 'raw' : 'rendered');
  if (stopTrace) saveProfile(await stopTrace(), raw ? 'raw-trace' : 'rendered-trace', 'json');
  const state = await page.evaluate(() => {
    const B = (window as any).__bench;
    return {
      enterAt: B.enterAt as number,
      end: (B.paintedAt ?? B.markerAt) as number,
      markerAt: B.markerAt as number,
      bytes: B.markerBytes as number,
      inputDelays: B.inputDelays as number[],
      longTasks: B.longTasks as number[],
      renders: B.renders as number,
      wsMessages: B.wsMessages as number,
      wsBytes: B.wsBytes as number,
    };
  });
  if (raw) {
    // Let the prompt after the marker pass before rendering again.
    await sleep(300);
    await page.evaluate(() => {
      (window as any).__bench.raw = false;
    });
  }
  await page.evaluate(() => {
    (window as any).__bench.marker = null;
  });
  return {
    bytes: state.bytes,
    mbPerS: state.bytes / (state.end - state.enterAt) / 1e3,
    inputDelays: state.inputDelays,
    longTasks: state.longTasks,
    renders: state.renders,
    wsMessageSize: state.wsMessages > 0 ? state.wsBytes / state.wsMessages : NaN,
  };
}

async function terminalSize(page: QuietPage): Promise<{ cols: number; rows: number }> {
  return await page.evaluate(() => {
    const term = (window as any).__bench.term;
    return { cols: term.cols as number, rows: term.rows as number };
  });
}

// ---------------------------------------------------------------------------------------------
// The figures

/** The scripts the page fetches when a session starts (app/src/term/mod.rs and extras.rs). */
const SESSION_SCRIPTS = ['xterm.js', 'addon-fit.js', 'addon-unicode11.js', 'addon-web-links.js', 'addon-clipboard.js'];
/** The session machinery's WebAssembly, cut out of the app's (xtask/src/split.rs). */
const SESSION_MODULE = /-split_[a-z_]+\.wasm$/;
const isSessionFile = (name: string) => SESSION_SCRIPTS.includes(name) || SESSION_MODULE.test(name);

test('bundle: dist/ sizes and first load to the interactive form', async ({ browser, rig }) => {
  // `cargo xtask` writes a .gz (gzip -9) and a .br (brotli q11) copy beside every file after the
  // build (xtask/scripts/precompress.mjs): their sizes are exactly what `burrow serve` sends.
  const size = (file: string): number => {
    if (!fs.existsSync(file)) {
      throw new Error(`${file} is missing: build dist/ with \`cargo xtask bench\`, which precompresses it`);
    }
    return fs.statSync(file).size;
  };
  const files = fs
    .readdirSync(DIST_DIR)
    .filter((name) => fs.statSync(path.join(DIST_DIR, name)).isFile() && !/\.(br|gz)$/.test(name))
    .sort()
    .map((name) => {
      const file = path.join(DIST_DIR, name);
      return { name, raw: size(file), gzip: size(`${file}.gz`), brotli: size(`${file}.br`) };
    });
  const cold: number[] = [];
  const warm: number[] = [];
  let loaded: string[] = [];
  for (let run = 0; run < RUNS; run++) {
    const context = await newContext(browser);
    const page = await context.newPage();
    await page.goto(`${rig.burrow.url}/`, { waitUntil: 'commit' });
    await page.waitForFunction(() => (window as any).__bench.interactiveAt !== null, null, { timeout: 60_000 });
    cold.push(await page.evaluate(() => (window as any).__bench.interactiveAt as number));
    if (run === 0) {
      loaded = await page.evaluate(() => [
        location.pathname,
        ...performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname),
      ]);
    }
    await page.reload({ waitUntil: 'commit' });
    await page.waitForFunction(() => (window as any).__bench.interactiveAt !== null, null, { timeout: 60_000 });
    warm.push(await page.evaluate(() => (window as any).__bench.interactiveAt as number));
    await context.close();
  }
  const loadedNames = new Set(loaded.map((p) => (p === '/' ? 'index.html' : p.replace(/^\//, ''))));
  const pageFiles = files.filter((f) => loadedNames.has(f.name));
  const total = (key: 'raw' | 'gzip' | 'brotli') => pageFiles.reduce((sum, f) => sum + f[key], 0);
  // What the page fetches when a session starts (e2e wire.spec.ts checks that it does, and that
  // the first screen does not): xterm.js, its fit addon and the session's addons.
  const sessionFiles = files.filter((f) => isSessionFile(f.name));
  const sessionTotal = (key: 'raw' | 'gzip' | 'brotli') => sessionFiles.reduce((sum, f) => sum + f[key], 0);
  save('bundle', {
    files,
    loaded: pageFiles.map((f) => f.name),
    total: { raw: total('raw'), gzip: total('gzip'), brotli: total('brotli') },
    session: {
      files: sessionFiles.map((f) => f.name),
      raw: sessionTotal('raw'),
      gzip: sessionTotal('gzip'),
      brotli: sessionTotal('brotli'),
    },
    coldMs: runs(cold),
    warmMs: runs(warm),
    chromium: browser.version(),
    load: load(),
  });
});

test('time to prompt: connect click vs ssh start, to the shell prompt', async ({ rig }) => {
  const page = await QuietPage.open(installHooks);
  // Warm-up: the first connect meets the host key and stores it for the bench device.
  {
    const p = await openPath(rig, false);
    await connectPage(page, rig, p.sourceToken);
    await closePath(rig, p);
  }
  const ours: ConnectTiming[] = [];
  for (let run = 0; run < RUNS; run++) {
    const p = await openPath(rig, false);
    ours.push(await connectPage(page, rig, p.sourceToken));
    await closePath(rig, p);
  }
  const { cols, rows } = await terminalSize(page);
  await page.close();

  const native: number[] = [];
  const p = await openPath(rig, true);
  try {
    // Warm-up (same as the page: the first run pays for cold caches).
    await nativePty(rig, p.port as number, { keys: 0, cols, rows });
    for (let run = 0; run < RUNS; run++) {
      native.push((await nativePty(rig, p.port as number, { keys: 0, cols, rows })).prompt_ms);
    }
  } finally {
    await closePath(rig, p);
  }
  const pick = (key: keyof ConnectTiming) => runs(ours.map((t) => t[key] as number));
  save('prompt', {
    ours: {
      total: pick('total'),
      cookie: pick('cookie'),
      websocket: pick('websocket'),
      handshake: pick('handshake'),
      auth: pick('auth'),
      shell: pick('shell'),
      prompt: pick('prompt'),
      sshToPrompt: pick('sshToPrompt'),
      hostKeyAsked: ours.filter((t) => t.hostKeyAsked).length,
    },
    native: runs(native),
    load: load(),
  });
});

/** Echo of the app in one Chromium (headless or headed): per-run p50/p99, every sample, and the traced parts. */
async function echoOurs(rig: Rig, headed: boolean): Promise<{ p50: number[]; p99: number[]; all: number[]; parts: number[][] }> {
  const page = await QuietPage.open(installHooks, undefined, { headed });
  const p = await openPath(rig, false);
  const result = { p50: [] as number[], p99: [] as number[], all: [] as number[], parts: [] as number[][] };
  try {
    await connectPage(page, rig, p.sourceToken);
    await page.click('terminal');
    for (let run = 0; run < RUNS; run++) {
      await page.evaluate(() => {
        (window as any).__bench.echo = [];
        (window as any).__bench.pendingKeys = [];
      });
      for (let key = 0; key < KEYS; key++) {
        if (key % 100 === 0) {
          await page.press('Control+U');
          await sleep(200);
        }
        await page.press('a');
        await page.waitForFunction((n) => (window as any).__bench.echo.length >= n, key + 1, 10_000);
      }
      const echo: number[] = await page.evaluate(() => (window as any).__bench.echo);
      result.parts.push(...(await page.evaluate(() => (window as any).__bench.echoParts as number[][])));
      await page.evaluate(() => {
        (window as any).__bench.echoParts = [];
      });
      result.p50.push(percentile(echo, 50));
      result.p99.push(percentile(echo, 99));
      result.all.push(...echo);
    }
    await page.press('Control+U');
  } finally {
    await page.close();
    await closePath(rig, p);
  }
  return result;
}

/** The bare page's floor in one Chromium (headless or headed), `RUNS` times. */
async function echoFloor(headed: boolean): Promise<unknown> {
  const p50: number[] = [];
  const p99: number[] = [];
  const trip: number[] = [];
  const frame: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const floor = await measureFloor(KEYS, headed);
    p50.push(percentile(floor.total, 50));
    p99.push(percentile(floor.total, 99));
    trip.push(...floor.roundTrip);
    frame.push(...floor.toFrame);
  }
  return { p50: runs(p50), p99: runs(p99), roundTrip: percentile(trip, 50), toFrame: percentile(frame, 50) };
}

test('echo latency: key pressed to character painted, vs a pty round trip', async ({ rig }) => {
  test.setTimeout(20 * 60_000);
  const ours = await echoOurs(rig, false);
  const nativeP50: number[] = [];
  const nativeP99: number[] = [];
  const nativeAll: number[] = [];
  const n = await openPath(rig, true);
  try {
    for (let run = 0; run < RUNS; run++) {
      const answer = await nativePty(rig, n.port as number, { keys: KEYS, cols: 120, rows: 40 });
      const echo = answer.echo_ms ?? [];
      nativeP50.push(percentile(echo, 50));
      nativeP99.push(percentile(echo, 99));
      nativeAll.push(...echo);
    }
  } finally {
    await closePath(rig, n);
  }
  // The browser's own floor: the same keys into a bare page whose WebSocket echo server answers at once.
  const floor = await echoFloor(false);
  // With an X display (`cargo xtask bench` runs the suite under xvfb-run), the same in a headed
  // Chromium, whose frames come as an operator's do.
  let headed: unknown = null;
  if (process.env.DISPLAY) {
    const oursHeaded = await echoOurs(rig, true);
    headed = {
      ours: { p50: runs(oursHeaded.p50), p99: runs(oursHeaded.p99), max: Math.max(...oursHeaded.all) },
      floor: await echoFloor(true),
    };
  }
  const parts = ours.parts;
  save('echo', {
    keys: KEYS,
    floor,
    ours: {
      p50: runs(ours.p50),
      p99: runs(ours.p99),
      max: Math.max(...ours.all),
      // Medians of each part over every traced key.
      parts: {
        samples: parts.length,
        keyToSend: percentile(parts.map((p) => p[0]), 50),
        roundTrip: percentile(parts.map((p) => p[1]), 50),
        messageToWrite: percentile(parts.map((p) => p[2]), 50),
        writeToPaint: percentile(parts.map((p) => p[3]), 50),
        // The same for the slowest 2% of traced keys (the p99's neighbourhood): which part grows.
        tail: (() => {
          const total = (p: number[]) => p[0] + p[1] + p[2] + p[3];
          const slow = [...parts].sort((a, b) => total(b) - total(a)).slice(0, Math.max(1, Math.round(parts.length / 50)));
          return {
            samples: slow.length,
            total: percentile(slow.map(total), 50),
            keyToSend: percentile(slow.map((p) => p[0]), 50),
            roundTrip: percentile(slow.map((p) => p[1]), 50),
            messageToWrite: percentile(slow.map((p) => p[2]), 50),
            writeToPaint: percentile(slow.map((p) => p[3]), 50),
          };
        })(),
      },
    },
    native: { p50: runs(nativeP50), p99: runs(nativeP99), max: Math.max(...nativeAll) },
    headed,
    load: load(),
  });
});

/** The terminal's visible text (xterm.js's buffer). */
async function screenText(page: QuietPage): Promise<string> {
  return await page.evaluate(() => {
    const term = (window as any).__burrowTerm;
    const buffer = term.buffer.active;
    const lines: string[] = [];
    for (let i = buffer.viewportY; i < buffer.viewportY + term.rows; i++) {
      lines.push(buffer.getLine(i)?.translateToString(true) ?? '');
    }
    return lines.join('\n');
  });
}

async function waitForScreen(page: QuietPage, pattern: string, timeout = 30_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!new RegExp(pattern, 'm').test(await screenText(page))) {
    if (Date.now() > deadline) throw new Error(`the screen never matched ${pattern}:\n${await screenText(page)}`);
    await sleep(20);
  }
}

/** The password of the scripted session; no frame may show it. */
const SECRET = 'kumquat9';

/**
 * The scripted session of the typeahead figure, typed at 80 ms a key without waiting for echoes:
 * commands with backspaces, a `read -s` password, a vi edit. Returns the final screen and how
 * many rendered frames showed the password's first two characters.
 */
async function scriptedSession(page: QuietPage, oneWayMs: number): Promise<{ screen: string; leaks: number }> {
  const file = '/tmp/burrow-bench-typeahead.txt';
  await page.evaluate((secret) => {
    const B = (window as any).__bench;
    B.leaks = 0;
    const term = (window as any).__burrowTerm;
    term.onRender(() => {
      const buffer = term.buffer.active;
      for (let i = buffer.viewportY; i < buffer.viewportY + term.rows; i++) {
        if ((buffer.getLine(i)?.translateToString(true) ?? '').includes(secret.slice(0, 2))) B.leaks += 1;
      }
    });
  }, SECRET);
  // Letters, digits and space as key presses; punctuation as text input (the quiet page would
  // send its character code as a key code, which Chromium reads as another key).
  const keys = async (text: string) => {
    for (const key of text) {
      if (/^[A-Za-z0-9 ]$/.test(key)) await page.press(key);
      else await page.type(key);
      await sleep(80);
    }
  };
  const settle = async () => await sleep(2 * oneWayMs + 400);
  await keys(`rm -f ${file}; clear`);
  await page.press('Enter');
  await settle();
  await keys('echo one twx');
  for (let i = 0; i < 3; i++) {
    await page.press('Backspace');
    await sleep(80);
  }
  await keys('two three');
  await page.press('Enter');
  await waitForScreen(page, '^one two three$');
  await keys("read -s -p 'Password: ' pw; echo; echo got-${#pw}-$((3-1))");
  await page.press('Enter');
  // The screen's text drops trailing spaces: the prompt's line reads `Password:`.
  await waitForScreen(page, '^Password:\\s*$');
  await keys(SECRET);
  await page.press('Enter');
  await waitForScreen(page, '^got-8-2$');
  await keys(`vi -u NONE -N ${file}`);
  await page.press('Enter');
  await settle();
  await keys('ihello from vi');
  await page.press('Escape');
  await keys(':wq');
  await page.press('Enter');
  await settle();
  await keys(`cat ${file}; rm -f ${file}`);
  await page.press('Enter');
  await waitForScreen(page, '^hello from vi$');
  await settle();
  const screen = await screenText(page);
  const leaks = await page.evaluate(() => (window as any).__bench.leaks as number);
  return { screen, leaks };
}

test('typeahead: displayed echo on slow links, vs native ssh through the same delay', async ({ rig }) => {
  test.setTimeout(40 * 60_000);
  const byRtt: Record<string, unknown> = {};
  for (const rtt of RTTS) {
    const oneWay = rtt / 2;
    // Ours, with the default setting (auto).
    const oursP50: number[] = [];
    const oursP99: number[] = [];
    const promptMs: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const page = await QuietPage.open(installHooks);
      const { path: p, delay } = await openDelayedPath(rig, false, oneWay);
      try {
        promptMs.push((await connectPage(page, rig, p.sourceToken)).total);
        await page.click('terminal');
        await page.evaluate(() => {
          (window as any).__bench.echo = [];
          (window as any).__bench.pendingKeys = [];
        });
        for (let key = 0; key < TYPEAHEAD_KEYS; key++) {
          if (key % 50 === 0) {
            await page.press('Control+U');
            await sleep(2 * rtt + 200);
            await page.evaluate(() => ((window as any).__bench.pendingKeys = []));
          }
          const before = await page.evaluate(() => (window as any).__bench.echo.length as number);
          await page.press('a');
          await page.waitForFunction((n) => (window as any).__bench.echo.length > n, before, 20_000);
        }
        const echo: number[] = await page.evaluate(() => (window as any).__bench.echo);
        oursP50.push(percentile(echo, 50));
        oursP99.push(percentile(echo, 99));
        await page.press('Control+U');
      } finally {
        await page.close();
        await closePath(rig, p);
        await delay.stop();
      }
    }
    // Native ssh through the same delay.
    const nativeP50: number[] = [];
    const nativeP99: number[] = [];
    const nativePrompt: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const { path: n, delay } = await openDelayedPath(rig, true, oneWay);
      try {
        const answer = await nativePty(rig, n.port as number, { keys: TYPEAHEAD_KEYS, cols: 120, rows: 40 });
        nativePrompt.push(answer.prompt_ms);
        const echo = answer.echo_ms ?? [];
        nativeP50.push(percentile(echo, 50));
        nativeP99.push(percentile(echo, 99));
      } finally {
        await closePath(rig, n);
        await delay.stop();
      }
    }
    // Correctness: the scripted session with typeahead always on, and off.
    const sessions: Record<string, { screen: string; leaks: number }> = {};
    for (const mode of ['always', 'off']) {
      const page = await QuietPage.open(installHooks);
      const { path: p, delay } = await openDelayedPath(rig, false, oneWay);
      try {
        await page.goto(`${rig.burrow.url}/`);
        await page.evaluate(
          (m) => localStorage.setItem('burrow.terminal-settings', JSON.stringify({ typeahead: m, style: 'underline', cursor_blink: false })),
          mode,
        );
        await connectPage(page, rig, p.sourceToken);
        await page.click('terminal');
        sessions[mode] = await scriptedSession(page, oneWay);
      } finally {
        await page.close();
        await closePath(rig, p);
        await delay.stop();
      }
    }
    byRtt[String(rtt)] = {
      ours: { p50: runs(oursP50), p99: runs(oursP99), prompt: runs(promptMs) },
      native: { p50: runs(nativeP50), p99: runs(nativeP99), prompt: runs(nativePrompt) },
      correctness: {
        screensEqual: sessions.always.screen === sessions.off.screen,
        leaksOn: sessions.always.leaks,
        leaksOff: sessions.off.leaks,
        screenOn: sessions.always.screen,
        screenOff: sessions.off.screen,
      },
    };
  }
  save('typeahead', { keys: TYPEAHEAD_KEYS, runs: RUNS, rtts: byRtt, load: load() });
});

/** Opens a terminal tab and waits for its prompt (screenText reads the newest terminal). */
async function newTab(page: QuietPage, rig: Rig): Promise<void> {
  const before = await page.evaluate(() => (window as any).__bench.terms as number);
  await page.click('tab-new');
  await page.waitForFunction((n) => (window as any).__bench.terms > n, before, 30_000);
  await waitForScreen(page, PROMPT(rig.user.name));
}

/** The end marker of tab `name`'s output; the typed command shows `$((2+3))`, never `5`. */
const tabMarker = (name: string) => `TABS-${name}-5-END`;

test('tabs: two tabs printing at once both finish, keys answered in a third', async ({ rig }) => {
  test.setTimeout(20 * 60_000);
  const bytes = Math.round(TABS_MB * 1e6);
  const result = {
    mb: TABS_MB,
    finished: [] as number[],
    seconds: [] as number[],
    p50: [] as number[],
    p99: [] as number[],
    max: [] as number[],
    keys: [] as number[],
  };
  for (let run = 0; run < RUNS; run++) {
    const page = await QuietPage.open(installHooks);
    const p = await openPath(rig, false);
    try {
      await connectPage(page, rig, p.sourceToken);
      await page.evaluate(
        (markers) => ((window as any).__bench.tabMarkers = Object.fromEntries(markers.map((m: string) => [m, null]))),
        [tabMarker('ONE'), tabMarker('TWO')],
      );
      const startAt: number[] = [];
      // Tab 1 (the session's first shell), then a new tab: each prints `bytes` of base64 text.
      for (const [i, name] of ['ONE', 'TWO'].entries()) {
        if (i > 0) {
          await newTab(page, rig);
        }
        await page.click('terminal');
        await page.type(`head -c ${bytes} ${rig.payload}; echo TABS-${name}-$((2+3))-END`);
        startAt.push(await page.evaluate(() => performance.now()));
        await page.press('Enter');
      }
      // A third tab, whose shell answers keys while the other two print.
      await newTab(page, rig);
      await page.click('terminal');
      await page.evaluate(() => {
        (window as any).__bench.echo = [];
        (window as any).__bench.pendingKeys = [];
      });
      const deadline = Date.now() + 10 * 60_000;
      let typed = 0;
      const bothDone = async () =>
        await page.evaluate(() => Object.values((window as any).__bench.tabMarkers).every((at) => at !== null));
      while (!(await bothDone())) {
        if (Date.now() > deadline) throw new Error('the two tabs did not finish printing within 10 minutes');
        if (typed > 0 && typed % 50 === 0) await page.press('Control+U');
        await page.press('a');
        typed += 1;
        await page.waitForFunction((n) => (window as any).__bench.echo.length >= n, typed, 60_000);
      }
      const state = await page.evaluate(() => ({
        echo: (window as any).__bench.echo as number[],
        markers: (window as any).__bench.tabMarkers as Record<string, number>,
      }));
      const ends = [state.markers[tabMarker('ONE')], state.markers[tabMarker('TWO')]];
      result.finished.push(ends.filter((t) => t !== null).length);
      result.seconds.push(Math.max(ends[0] - startAt[0], ends[1] - startAt[1]) / 1000);
      result.keys.push(state.echo.length);
      result.p50.push(percentile(state.echo, 50));
      result.p99.push(percentile(state.echo, 99));
      result.max.push(Math.max(...state.echo));
    } finally {
      await page.close();
      await closePath(rig, p);
    }
  }
  save('tabs', {
    mb: result.mb,
    finished: runs(result.finished),
    seconds: runs(result.seconds),
    keys: runs(result.keys),
    p50: runs(result.p50),
    p99: runs(result.p99),
    max: runs(result.max),
    load: load(),
  });
});

test('throughput: raw SSH channel bytes and rendered output, vs native ssh', async ({ rig }) => {
  test.setTimeout(15 * 60_000);
  const page = await QuietPage.open(installHooks);
  const p = await openPath(rig, false);
  const raw: number[] = [];
  const rendered: number[] = [];
  const inputDelays: number[] = [];
  const longTasks: number[] = [];
  const wsMessageSizes: number[] = [];
  let renderedBytes = 0;
  try {
    await connectPage(page, rig, p.sourceToken);
    await page.click('terminal');
    for (let run = 0; run < RUNS; run++) {
      const result = await pageTransfer(page, `head -c ${RAW_BYTES} /dev/zero`, true);
      raw.push(result.mbPerS);
      wsMessageSizes.push(result.wsMessageSize);
    }
    for (let run = 0; run < RUNS; run++) {
      const result = await pageTransfer(page, `cat ${rig.payload}`, false);
      rendered.push(result.mbPerS);
      inputDelays.push(...result.inputDelays);
      longTasks.push(...result.longTasks);
      renderedBytes = result.bytes;
      await page.press('Control+L');
    }
  } finally {
    await page.close();
    await closePath(rig, p);
  }

  const nativeRaw: number[] = [];
  const nativeRawPty: number[] = [];
  const nativeCat: number[] = [];
  const n = await openPath(rig, true);
  try {
    for (let run = 0; run < RUNS; run++) {
      nativeRaw.push((await nativeTransfer(rig, n.port as number, `head -c ${RAW_BYTES} /dev/zero`)).mbPerS);
      nativeRawPty.push((await nativeTransfer(rig, n.port as number, `head -c ${RAW_BYTES} /dev/zero`, true)).mbPerS);
    }
    for (let run = 0; run < RUNS; run++) {
      nativeCat.push((await nativeTransfer(rig, n.port as number, `cat ${rig.payload}`)).mbPerS);
    }
  } finally {
    await closePath(rig, n);
  }
  save('throughput', {
    rawBytes: RAW_BYTES,
    renderedBytes,
    renderedMb: RENDERED_MB,
    ours: { raw: runs(raw), rendered: runs(rendered) },
    native: { raw: runs(nativeRaw), rawPty: runs(nativeRawPty), cat: runs(nativeCat) },
    input: {
      samples: inputDelays.length,
      p50: percentile(inputDelays, 50),
      p99: percentile(inputDelays, 99),
      max: inputDelays.length ? Math.max(...inputDelays) : NaN,
    },
    longestTaskMs: longTasks.length ? Math.max(...longTasks) : 0,
    rawWsMessageBytes: runs(wsMessageSizes),
    load: load(),
  });
});

// ---------------------------------------------------------------------------------------------
// SFTP: the Files panel against OpenSSH's `sftp`

/** Runs `sftp -b BATCH` (public key, through a source agent's port); resolves to its wall time (ms). */
async function nativeSftp(rig: Rig, port: number, batch: string[]): Promise<number> {
  const file = path.join(rig.dataDir, `batch-${process.pid}-${Date.now()}`);
  fs.writeFileSync(file, `${batch.join('\n')}\n`);
  const args = [
    '-F', '/dev/null',
    '-o', `UserKnownHostsFile=${rig.knownHosts}`,
    '-o', 'StrictHostKeyChecking=yes',
    '-o', `HostKeyAlias=${THING}`,
    '-o', 'IdentitiesOnly=yes',
    '-o', 'LogLevel=ERROR',
    '-i', rig.user.keys.ed25519.privateKeyPath,
    '-P', String(port),
    '-b', file,
    `${rig.user.name}@127.0.0.1`,
  ];
  try {
    return await new Promise((resolve, reject) => {
      const started = performance.now();
      const child = spawn('sftp', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (chunk) => (err += chunk));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`sftp failed (${code}): ${err}`))));
    });
  } finally {
    fs.rmSync(file, { force: true });
  }
}

/** The page's main-thread busy time so far (s), from the DevTools Performance domain. */
async function pageTaskSeconds(page: QuietPage): Promise<number> {
  const { metrics } = await page.send('Performance.getMetrics');
  return (metrics as Array<{ name: string; value: number }>).find((m) => m.name === 'TaskDuration')?.value ?? NaN;
}

/** Waits until `count` transfer rows are done; fails on a failed one. */
async function waitTransfers(page: QuietPage, count: number): Promise<void> {
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    const state = await page.evaluate(() => ({
      done: document.querySelectorAll('[data-testid="transfer"][data-state="done"]').length,
      failed: Array.from(document.querySelectorAll('[data-testid="transfer"][data-state="failed"]')).map((e) => e.textContent),
    }));
    if (state.failed.length > 0) throw new Error(`a transfer failed: ${state.failed.join('; ')}`);
    if (state.done >= count) return;
    if (Date.now() > deadline) throw new Error('the transfer did not finish within 15 minutes');
    await sleep(50);
  }
}

interface SftpRuns {
  download: number[];
  upload: number[];
  downloadCpu: number[];
  uploadCpu: number[];
  /** WebSocket messages the page received during each download. */
  downloadMessages: number[];
  /** The share of all the machine's cores busy during each transfer (ours, then native's). */
  downloadMachine: number[];
  uploadMachine: number[];
  nativeDownloadMachine: number[];
  nativeUploadMachine: number[];
  /** Each transfer's CPU per MB by part of the path (lib/cpu.ts), ours then native's. */
  downloadParts: PerMb[];
  uploadParts: PerMb[];
  nativeDownloadParts: PerMb[];
  nativeUploadParts: PerMb[];
  nativeDownload: number[];
  nativeUpload: number[];
  /** Keys typed into the shell during one more download, each key's echo latency (ms). */
  keysDuringDownload: number[];
}

/** An `SftpRuns` with no transfers yet. */
function noSftpRuns(): SftpRuns {
  return {
    download: [],
    upload: [],
    downloadCpu: [],
    uploadCpu: [],
    downloadMessages: [],
    downloadMachine: [],
    uploadMachine: [],
    nativeDownloadMachine: [],
    nativeUploadMachine: [],
    downloadParts: [],
    uploadParts: [],
    nativeDownloadParts: [],
    nativeUploadParts: [],
    nativeDownload: [],
    nativeUpload: [],
    keysDuringDownload: [],
  };
}

/**
 * Downloads and uploads `bytes` through `service`, page and native, `count` times each; the
 * device's agent reaches sshd at `device` (a delaying forwarder, say), and `keys` adds the
 * download with keys typed meanwhile.
 */
async function sftpRuns(
  rig: Rig,
  service: BurrowService,
  bytes: number,
  count: number,
  { device = rig.sshd.address, keys = true }: { device?: string; keys?: boolean } = {},
): Promise<SftpRuns> {
  const home = path.join('/home', rig.user.name);
  const dir = path.join(home, `bench-sftp-${process.pid}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir);
  runQuiet('sh', ['-c', `head -c ${bytes} /dev/urandom > ${dir}/down.bin && chown -R ${rig.user.name}: ${dir}`]);
  const out = noSftpRuns();
  const page = await QuietPage.open(installHooks);
  // Headless Chromium cannot answer the save dialog: the origin-private file system stands in
  // for the chosen file; the page writes through the same File System Access stream.
  await page.send('Page.addScriptToEvaluateOnNewDocument', {
    source: `window.showSaveFilePicker = async (o) => (await navigator.storage.getDirectory()).getFileHandle(o.suggestedName, { create: true });`,
  });
  await page.send('Performance.enable');
  const p = await openPath(rig, false, service, device);
  try {
    await connectPage(page, rig, p.sourceToken, service.url);
    await page.click('files-toggle');
    await page.waitForFunction(() => /^\//.test((document.querySelector('[data-testid="files-path"]') as HTMLInputElement | null)?.value ?? ''), undefined);
    await page.evaluate((target) => {
      const input = document.querySelector('[data-testid="files-path"]') as HTMLInputElement;
      input.value = target;
      input.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
    }, dir);
    await page.waitForFunction(() => document.querySelector('[data-testid="file-row"][data-name="down.bin"]') !== null, undefined);
    // The upload's bytes: random, made in the page once (a File dropped onto the panel).
    await page.evaluate((size) => {
      const parts: Uint8Array<ArrayBuffer>[] = [];
      for (let left = size; left > 0; left -= 65536) {
        const part = new Uint8Array(Math.min(left, 65536));
        crypto.getRandomValues(part);
        parts.push(part);
      }
      (window as any).__benchUpload = new Blob(parts);
    }, bytes);
    let finished = 0;
    const label = service === rig.burrow ? 'free' : 'limited';
    const wsMessages = () => page.evaluate(() => (window as any).__bench.wsMessages as number);
    for (let run = 0; run < count; run++) {
      // With BENCH_PROFILE=1 the first run of each direction is profiled (results/sftp-*).
      let stopProfile = PROFILE && run === 0 ? await page.startProfile() : null;
      const messages0 = await wsMessages();
      let cpu0 = await pageTaskSeconds(page);
      let watch = CpuWatch.start();
      let t0 = performance.now();
      await page.evaluate(() => {
        const row = document.querySelector('[data-testid="file-row"][data-name="down.bin"]');
        (row?.querySelector('[data-testid="file-download"]') as HTMLElement).click();
      });
      await waitTransfers(page, ++finished);
      let secs = (performance.now() - t0) / 1000;
      out.download.push(bytes / secs / 1e6);
      let used = watch.stop();
      out.downloadMachine.push(machineBusy(used));
      out.downloadParts.push(msPerMb(used, bytes));
      out.downloadCpu.push(((await pageTaskSeconds(page)) - cpu0) / secs);
      out.downloadMessages.push((await wsMessages()) - messages0);
      if (stopProfile) saveProfile(await stopProfile(), `sftp-${label}-download`);

      const name = `up-${run}.bin`;
      stopProfile = PROFILE && run === 0 ? await page.startProfile() : null;
      cpu0 = await pageTaskSeconds(page);
      watch = CpuWatch.start();
      t0 = performance.now();
      await page.evaluate((fileName) => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([(window as any).__benchUpload], fileName));
        const panel = document.querySelector('[data-testid="files"]') as HTMLElement;
        panel.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
      }, name);
      await waitTransfers(page, ++finished);
      secs = (performance.now() - t0) / 1000;
      out.upload.push(bytes / secs / 1e6);
      used = watch.stop();
      out.uploadMachine.push(machineBusy(used));
      out.uploadParts.push(msPerMb(used, bytes));
      out.uploadCpu.push(((await pageTaskSeconds(page)) - cpu0) / secs);
      if (stopProfile) saveProfile(await stopProfile(), `sftp-${label}-upload`);
      if (fs.statSync(path.join(dir, name)).size !== bytes) throw new Error(`the upload ${name} is incomplete`);
      fs.rmSync(path.join(dir, name));
    }
    // One more download, not timed, with keys typed into the shell one at a time (each after the
    // previous one's echo) for as long as it runs: the echo latency figure's hooks, keydown to
    // the painted character.
    if (keys) await keysDuringDownload(page, rig, service, out, ++finished);
  } finally {
    await page.close();
    await closePath(rig, p, service);
  }
  await nativeSftpRuns(rig, service, device, dir, bytes, count, out);
  return out;
}

/** The download with keys typed meanwhile (see `sftpRuns`); `finished` counts it. */
async function keysDuringDownload(page: QuietPage, rig: Rig, service: BurrowService, out: SftpRuns, finished: number): Promise<void> {
  await page.click('terminal');
  await page.evaluate(() => {
    (window as any).__bench.echo = [];
    (window as any).__bench.pendingKeys = [];
  });
  await page.evaluate(() => {
    const row = document.querySelector('[data-testid="file-row"][data-name="down.bin"]');
    (row?.querySelector('[data-testid="file-download"]') as HTMLElement).click();
  });
  const running = () =>
    page.evaluate(() => document.querySelector('[data-testid="transfer"][data-state="running"]') !== null);
  await page.waitForFunction(() => document.querySelector('[data-testid="transfer"][data-state="running"]') !== null, undefined);
  // Past the service's one-second burst when there is a limit.
  await sleep(service === rig.burrow ? 100 : 2000);
  for (let key = 0; key < 300 && (await running()); key++) {
    if (key % 50 === 49) {
      await page.press('Control+U');
      await sleep(100);
    }
    const before: number = await page.evaluate(() => (window as any).__bench.echo.length);
    await page.press('a');
    await page.waitForFunction((n) => (window as any).__bench.echo.length > n, before, 30_000);
  }
  out.keysDuringDownload = await page.evaluate(() => (window as any).__bench.echo as number[]);
  await page.press('Control+U');
  await waitTransfers(page, finished);
}

/** Native `sftp`'s side of `sftpRuns`: the same file down and up, `count` times each. */
async function nativeSftpRuns(
  rig: Rig,
  service: BurrowService,
  device: string,
  dir: string,
  bytes: number,
  count: number,
  out: SftpRuns,
): Promise<void> {
  const n = await openPath(rig, true, service, device);
  const local = path.join(rig.dataDir, 'sftp-down.bin');
  try {
    // The login itself is timed apart and taken off: the page's figures start logged in.
    // Its CPU is taken off each transfer's CPU per MB likewise.
    const loginWatch = CpuWatch.start();
    const login = await nativeSftp(rig, n.port as number, ['pwd']);
    const loginUsed = loginWatch.stop();
    for (let run = 0; run < count; run++) {
      let watch = CpuWatch.start();
      const down = await nativeSftp(rig, n.port as number, [`get ${dir}/down.bin ${local}`]);
      let used = watch.stop();
      out.nativeDownloadMachine.push(machineBusy(used));
      out.nativeDownloadParts.push(msPerMb(cpuMinus(used, loginUsed), bytes));
      out.nativeDownload.push(bytes / ((down - login) / 1000) / 1e6);
      fs.chmodSync(local, 0o644);
      watch = CpuWatch.start();
      const up = await nativeSftp(rig, n.port as number, [`put ${local} ${dir}/native-up.bin`]);
      used = watch.stop();
      out.nativeUploadMachine.push(machineBusy(used));
      out.nativeUploadParts.push(msPerMb(cpuMinus(used, loginUsed), bytes));
      out.nativeUpload.push(bytes / ((up - login) / 1000) / 1e6);
      fs.rmSync(path.join(dir, 'native-up.bin'), { force: true });
    }
  } finally {
    await closePath(rig, n, service);
    fs.rmSync(local, { force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('sftp: download and upload vs native sftp, with and without the 800 KB/s tunnel limit', async ({ rig }) => {
  test.setTimeout(60 * 60_000);
  const free = await sftpRuns(rig, rig.burrow, SFTP_BYTES, RUNS);
  // BENCH_SFTP_LIMITED_MB=0 leaves the rate-limited half out (a quicker comparison of builds).
  let limited = noSftpRuns();
  // The same limit across a link as far as a cellular device: AWS's limit and a long round trip
  // together, where the SSH window the page grants can set the pace instead of the limit.
  let far = noSftpRuns();
  if (SFTP_LIMITED_BYTES > 0) {
    const limitedService = await BurrowService.start(['--rate-limit-per-tunnel', SFTP_LIMIT]);
    try {
      limited = await sftpRuns(rig, limitedService, SFTP_LIMITED_BYTES, Math.min(RUNS, 2));
      const delay = await Delay.start(rig.sshd.address, SFTP_FAR_RTT_MS / 2);
      try {
        far = await sftpRuns(rig, limitedService, SFTP_LIMITED_BYTES, 1, { device: delay.address, keys: false });
      } finally {
        await delay.stop();
      }
    } finally {
      await limitedService.stop();
    }
  }
  const summarise = (r: SftpRuns) => ({
    download: runs(r.download),
    upload: runs(r.upload),
    downloadCpu: runs(r.downloadCpu),
    uploadCpu: runs(r.uploadCpu),
    downloadMessages: runs(r.downloadMessages),
    downloadMachine: runs(r.downloadMachine),
    uploadMachine: runs(r.uploadMachine),
    nativeDownloadMachine: runs(r.nativeDownloadMachine),
    nativeUploadMachine: runs(r.nativeUploadMachine),
    downloadParts: partMedians(r.downloadParts),
    uploadParts: partMedians(r.uploadParts),
    nativeDownloadParts: partMedians(r.nativeDownloadParts),
    nativeUploadParts: partMedians(r.nativeUploadParts),
    nativeDownload: runs(r.nativeDownload),
    nativeUpload: runs(r.nativeUpload),
    keys: {
      samples: r.keysDuringDownload.length,
      p50: percentile(r.keysDuringDownload, 50),
      p99: percentile(r.keysDuringDownload, 99),
      max: r.keysDuringDownload.length ? Math.max(...r.keysDuringDownload) : NaN,
    },
  });
  save('sftp', {
    bytes: SFTP_BYTES,
    limitedBytes: SFTP_LIMITED_BYTES,
    limit: SFTP_LIMIT,
    limitMbPerS: SFTP_LIMIT_MB_PER_S,
    free: summarise(free),
    limited: summarise(limited),
    limitedRuns: Math.min(RUNS, 2),
    far: summarise(far),
    farRttMs: SFTP_FAR_RTT_MS,
    cores: os.cpus().length,
    load: load(),
  });
});

// Two builds of the app side by side: BURROW_DIST (served by the rig's service) and
// BENCH_SFTP_COMPARE_DIST (a second service), in turns, RUNS rounds; every round measures native
// sftp again, so each build's ratio comes from the same minutes of a shared machine.
// Defined only when asked for: it is a tool for changing the app, not a figure of the report.
if (SFTP_COMPARE_DIST !== '') test('sftp compare: two builds of the app in turns, each against native sftp', async ({ rig }) => {
  test.setTimeout(60 * 60_000);
  const candidate = await BurrowService.start([], {}, SFTP_COMPARE_DIST);
  const rounds: Array<Record<string, unknown>> = [];
  try {
    for (let round = 0; round < RUNS; round++) {
      for (const [build, service] of [['base', rig.burrow], ['candidate', candidate]] as const) {
        const r = await sftpRuns(rig, service, SFTP_BYTES, 1);
        const row = {
          round,
          build,
          download: r.download[0],
          nativeDownload: r.nativeDownload[0],
          downloadRatio: r.download[0] / r.nativeDownload[0],
          upload: r.upload[0],
          nativeUpload: r.nativeUpload[0],
          uploadRatio: r.upload[0] / r.nativeUpload[0],
          downloadCpu: r.downloadCpu[0],
          uploadCpu: r.uploadCpu[0],
          downloadMachine: r.downloadMachine[0],
          nativeDownloadMachine: r.nativeDownloadMachine[0],
          keysP50: percentile(r.keysDuringDownload, 50),
          keysP99: percentile(r.keysDuringDownload, 99),
        };
        console.log(JSON.stringify(row));
        rounds.push(row);
      }
    }
  } finally {
    await candidate.stop();
  }
  save('sftp-compare', { base: DIST_DIR, candidate: SFTP_COMPARE_DIST, bytes: SFTP_BYTES, rounds, load: load() });
});

test('service scale: concurrent tunnels, relay latency and throughput, memory per tunnel', async () => {
  test.setTimeout(10 * 60_000);
  const levels: Array<Record<string, unknown>> = [];
  for (const tunnels of SCALE) {
    const results: Array<Record<string, any>> = [];
    for (let run = 0; run < RUNS; run++) {
      // BURROW_RELAY_TIMING: the service times each relayed message itself (receive → forward).
      const service = await BurrowService.start(['--max-open-tunnels', String(Math.max(100, tunnels + 10))], {
        BURROW_RELAY_TIMING: '1',
      });
      try {
        const output = runQuiet(LOAD_BIN, [
          '--endpoint',
          service.url,
          '--tunnels',
          String(tunnels),
          '--interval-ms',
          '1000',
          '--warmup-secs',
          '1',
          '--measure-secs',
          tunnels >= 1000 ? '5' : '3',
          '--bulk',
          String(tunnels),
          '--bulk-secs',
          '2',
          '--serve-pid',
          String(service.proc.pid),
        ]);
        const line = output.split('\n').find((l) => l.startsWith('RESULT '));
        if (!line) throw new Error(`the load client printed no result:\n${output}`);
        results.push(JSON.parse(line.slice('RESULT '.length)));
      } finally {
        await service.stop();
      }
    }
    const of = (get: (r: Record<string, any>) => number) => runs(results.map(get));
    levels.push({
      tunnels,
      ready: of((r) => r.ready),
      failed: of((r) => r.failed),
      firstError: results.find((r) => r.first_error)?.first_error ?? null,
      p50: of((r) => r.latency_ms.p50),
      p99: of((r) => r.latency_ms.p99),
      serviceP50: of((r) => r.service_ms?.p50 ?? NaN),
      serviceP99: of((r) => r.service_ms?.p99 ?? NaN),
      serviceP999: of((r) => r.service_ms?.p999 ?? NaN),
      serviceCount: of((r) => r.service_ms?.count ?? NaN),
      latencySamples: of((r) => r.latency_samples),
      messagesPerS: of((r) => r.echo_messages_per_s),
      offeredPerS: of((r) => r.offered_messages_per_s),
      serveCpuPerMessageUs: of((r) => (r.echo_cpu.serve_cpu_secs / (r.echo_messages_per_s * r.measured_secs)) * 1e6),
      serveCores: of((r) => r.echo_cpu.serve_cpu_secs / r.measured_secs),
      clientCores: of((r) => r.echo_cpu.client_cpu_secs / r.measured_secs),
      bulkMbPerS: of((r) => r.bulk[0]?.mb_per_s ?? NaN),
      serveCpuBulk: of((r) => (r.bulk[0] ? r.bulk[0].cpu.serve_cpu_secs / r.bulk[0].secs : NaN)),
      rssPerTunnelKiB: of((r) => r.rss_kib_per_idle_tunnel ?? NaN),
      rssIdleMiB: of((r) => (r.rss_kib.idle ?? NaN) / 1024),
      connectSecs: of((r) => r.connect_secs),
    });
  }
  save('scale', { levels, intervalMs: 1000, payload: 64, load: load() });
});

test('report: BENCHMARKS.md', async () => {
  const read = (name: string) => {
    const file = path.join(RESULTS, `${name}.json`);
    return fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : null;
  };
  const report = path.join(REPO_ROOT, 'BENCHMARKS.md');
  const previous = fs.existsSync(report) ? fs.readFileSync(report, 'utf8') : null;
  const fresh = renderReport({
    bundle: read('bundle'),
    prompt: read('prompt'),
    echo: read('echo'),
    throughput: read('throughput'),
    scale: read('scale'),
    sftp: read('sftp'),
    typeahead: read('typeahead'),
    tabs: read('tabs'),
    runs: RUNS,
    keys: KEYS,
    startLoad: process.env.BENCH_START_LOAD ?? '',
    // The run's date: its first figure's results file (the report may be rendered again later);
    // only the figures this run measured count (results of earlier runs may lie beside them).
    date: new Date(
      Math.min(
        ...onlyFigures(process.env.BENCH_ONLY)
          .map((name) => path.join(RESULTS, `${name}.json`))
          .filter((file) => fs.existsSync(file))
          .map((file) => fs.statSync(file).mtimeMs),
        Date.now(),
      ),
    ),
  });
  // With BENCH_ONLY, the figures not run keep their text from the report this one replaces.
  fs.writeFileSync(report, carryOver(fresh, previous, onlyFigures(process.env.BENCH_ONLY)));
});
