// Typeahead on a slow link: a forwarder holds every byte between the destination agent and sshd
// for a fixed time each way (e2e/support/delay.ts), so every echo takes at least that round trip.
// The page records each keydown and, through a MutationObserver on the DOM renderer's rows (the
// renderer changes them only when it paints a frame), every state of the screen it draws; for the
// password the rows are also sampled on every animation frame. The tests read those records.
import { test, expect } from '../fixtures';
import { passwordLogin } from '../pages/burrow-app';
import type { BurrowApp } from '../pages/burrow-app';
import type { BurrowService } from '../support/burrow';
import type { Sshd, TestUser } from '../support/sshd';
import { Delay } from '../support/delay';
import { startAgent } from '../support/burrow';
import type { Processes } from '../fixtures';

/** Each way: a 150 ms round trip. */
const ONE_WAY_MS = 75;

interface Frame {
  t: number;
  lines: string[];
  underlined: string;
}

/** Opens a tunnel whose agent reaches sshd through the delay, and logs in. */
async function slowLogin(
  app: BurrowApp,
  burrow: BurrowService,
  sshd: Sshd,
  testUser: TestUser,
  processes: Processes,
  open = true,
): Promise<void> {
  const delay = await Delay.start(sshd.address, ONE_WAY_MS);
  processes.onCleanup(() => delay.stop());
  const tunnel = await burrow.openTunnel(['SSH']);
  processes.track(
    await startAgent({
      endpoint: burrow.url,
      token: tunnel.destinationAccessToken,
      destinations: [`SSH=${delay.address}`],
    }),
  );
  if (open) await app.open();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  await app.terminal.waitForPrompt(testUser.name);
  // The prompt on the first row, so the typed line is row 0.
  await app.terminal.run('clear');
  await expect.poll(async () => (await app.terminal.text()).split('\n').filter((l) => l !== '').length).toBe(1);
}

/** Starts recording keydowns and every drawn state of the terminal (also each frame's, if asked). */
async function record(app: BurrowApp, everyFrame = false): Promise<void> {
  await app.page.evaluate((everyFrame) => {
    const log = { keys: [] as number[], frames: [] as Frame[] };
    (window as unknown as { __echoLog: typeof log }).__echoLog = log;
    document.addEventListener('keydown', (event) => log.keys.push(event.timeStamp), true);
    const rows = document.querySelector('[data-testid="terminal"] .xterm-rows') as HTMLElement;
    const snapshot = () =>
      log.frames.push({
        t: performance.now(),
        lines: rows.innerText.replace(/\u00a0/g, ' ').split('\n'),
        underlined: Array.from(rows.querySelectorAll('[class*="xterm-underline"]'))
          .map((span) => span.textContent ?? '')
          .join(''),
      });
    snapshot();
    new MutationObserver(snapshot).observe(rows, { subtree: true, childList: true, characterData: true });
    if (everyFrame) {
      const sample = () => {
        snapshot();
        requestAnimationFrame(sample);
      };
      requestAnimationFrame(sample);
    }

    interface Frame {
      t: number;
      lines: string[];
      underlined: string;
    }
  }, everyFrame);
}

async function recorded(app: BurrowApp): Promise<{ keys: number[]; frames: Frame[] }> {
  return await app.page.evaluate(() => (window as unknown as { __echoLog: { keys: number[]; frames: Frame[] } }).__echoLog);
}

/** For each typed character of `typed`: when row 0 first ended with the text up to it, after its key. */
function displayed(typed: string, keys: number[], frames: Frame[]): number[] {
  return [...typed].map((_, i) => {
    const prefix = typed.slice(0, i + 1);
    const frame = frames.find((f) => f.t >= keys[i] && (f.lines[0] ?? '').trimEnd().endsWith(prefix));
    return frame ? frame.t - keys[i] : Number.POSITIVE_INFINITY;
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

test('on a slow link typed keys show before their echo and the line ends as typed', async ({
  app,
  burrow,
  sshd,
  testUser,
  processes,
}) => {
  await slowLogin(app, burrow, sshd, testUser, processes);
  await record(app);
  const typed = 'echo typed-ahead-$((40+2))';
  await app.terminal.focus();
  await app.page.keyboard.type(typed, { delay: 120 });
  await app.terminal.expectText(typed);
  // Every prediction was confirmed: nothing is marked any more.
  await expect
    .poll(async () => await app.page.locator('[data-testid="terminal"] [class*="xterm-underline"]').count())
    .toBe(0);
  await app.page.keyboard.press('Enter');
  await app.terminal.expectText(/^typed-ahead-42$/m);

  const { keys, frames } = await recorded(app);
  const times = displayed(typed, keys, frames);
  // The first key of the line waits for its echo (nothing in its epoch was confirmed yet); the
  // later ones are drawn at once, well inside one round trip.
  const shown = `displayed after ${times.map(Math.round).join(', ')} ms`;
  expect(times[0], shown).toBeGreaterThanOrEqual(2 * ONE_WAY_MS - 5);
  expect(median(times.slice(2)), shown).toBeLessThan(ONE_WAY_MS);
  // Predictions were marked (underlined) until confirmed.
  expect(frames.some((f) => f.underlined !== '')).toBe(true);
});

test('a password typed where the device does not echo is never drawn', async ({
  app,
  burrow,
  sshd,
  testUser,
  processes,
}) => {
  await app.open();
  await app.page.getByTestId('typeahead').selectOption('always');
  await slowLogin(app, burrow, sshd, testUser, processes, false);
  await app.terminal.run("read -s -p 'Secret: ' pw; echo; echo got-${#pw}-$((1+1))");
  await app.terminal.expectText(/^Secret:$/m);
  await record(app, true);
  await app.terminal.focus();
  await app.page.keyboard.type('kumquat9', { delay: 80 });
  await app.page.keyboard.press('Enter');
  await app.terminal.expectText(/^got-8-2$/m);
  // Then a line that echoes is predicted again.
  await app.page.keyboard.type('echo fine', { delay: 120 });
  await app.terminal.expectText('echo fine');
  const { frames } = await recorded(app);
  expect(frames.length).toBeGreaterThan(5);
  const leaked = frames.filter((f) => f.lines.some((line) => line.includes('ku') || /^Secret: *\S/.test(line)));
  expect(leaked.map((f) => f.lines.join('\n'))).toEqual([]);
  expect(frames.some((f) => f.underlined !== '')).toBe(true);
});

test('typeahead off is remembered and then every key waits for its echo', async ({
  app,
  burrow,
  sshd,
  testUser,
  processes,
}) => {
  await app.open();
  await expect(app.page.getByTestId('typeahead')).toHaveValue('auto');
  await app.page.getByTestId('typeahead').selectOption('off');
  await app.page.reload();
  await expect(app.page.getByTestId('typeahead')).toHaveValue('off');
  await slowLogin(app, burrow, sshd, testUser, processes, false);
  await record(app);
  const typed = 'echo slow-line';
  await app.terminal.focus();
  await app.page.keyboard.type(typed, { delay: 120 });
  await app.terminal.expectText(typed);
  const { keys, frames } = await recorded(app);
  const times = displayed(typed, keys, frames);
  for (const time of times) expect(time).toBeGreaterThanOrEqual(2 * ONE_WAY_MS - 5);
  expect(frames.every((f) => f.underlined === '')).toBe(true);
});
