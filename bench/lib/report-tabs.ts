// Figure 8 of BENCHMARKS.md: several terminals on one connection. Two tabs print a large output
// at once while keys are typed into a third; both must finish, and the third's keys be answered.
import { fmt, spread } from './stats';

/* eslint-disable @typescript-eslint/no-explicit-any */

function met(ok: boolean | null): string {
  return ok === null ? 'not measured' : ok ? '**yes**' : '**no**';
}

/** Summary rows of figure 8. */
export function tabsSummary(t: any): string[] {
  if (!t) return ['| 8. Two printing tabs | failed | | | both finish, keys ≤ 100 ms | not measured |'];
  const bothFinished = t.finished.min === 2;
  return [
    `| 8. Two tabs printing ${t.mb} MB each at once: runs where both finished | ${bothFinished ? 'all' : 'not all'} | – | – | all | ${met(bothFinished)} |`,
    `| 8. Keys in a third tab meanwhile, p99 (ms) | ${spread(t.p99, 1)} | – | – | ≤ 100 ms | ${met(Number.isFinite(t.p99.median) ? t.p99.median <= 100 : null)} |`,
  ];
}

/** Section 8. */
export function tabsSection(t: any): string[] {
  const lines = ['## 8. Several terminals', ''];
  if (!t) return [...lines, 'Not measured: the figure failed (see the `cargo xtask bench` output).', ''];
  lines.push(
    `One connection, three tabs (shell channels of the same SSH session). Tab 1 and a new tab 2 each run \`head -c\` of ${t.mb} MB ` +
      'of base64 text followed by an end marker, started one after the other; a third tab is opened and keys are typed into its bash ' +
      'prompt one at a time, each once the previous one is painted, until both markers have reached their terminals (each hidden tab ' +
      "still parses all of its output into its own scrollback). Keys: from the `keydown` to the first render with the cursor moved (figure 2's hooks). " +
      'Time: from the Enter of the first tab to the later of the two markers.',
    '',
    '| Both finished (tabs) | Time for both (s) | Keys typed | Key p50 (ms) | Key p99 (ms) | Key worst (ms) |',
    '| --- | --- | --- | --- | --- | --- |',
    `| ${spread(t.finished, 0)} | ${spread(t.seconds, 1)} | ${spread(t.keys, 0)} | ${spread(t.p50, 1)} | ${spread(t.p99, 1)} | ${spread(t.max, 1)} |`,
    '',
    `Load at the end of the figure: ${fmt(t.load[0], 2)} / ${fmt(t.load[1], 2)} / ${fmt(t.load[2], 2)}.`,
    '',
  );
  return lines;
}
