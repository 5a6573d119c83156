// Figures a run did not measure keep what the previous BENCHMARKS.md said about them.
//
// `BENCH_ONLY=echo,typeahead cargo xtask bench` runs only some figures (a full run takes the
// better part of an hour). The report is then rendered from this run's results as usual, and for
// every figure that was not asked for, its summary rows and its section are copied unchanged from
// the BENCHMARKS.md being replaced, under a note naming the run they come from. Nothing is
// re-measured or edited: a carried figure reads exactly as its own run wrote it.

/** Figure names (BENCH_ONLY, results/<name>.json) and their numbers in the report. */
export const FIGURES: Record<string, number> = {
  prompt: 1,
  echo: 2,
  throughput: 3,
  bundle: 4,
  scale: 5,
  sftp: 6,
  typeahead: 7,
  tabs: 8,
};

/** How a carried section starts; the run's date follows. */
const CARRIED_NOTE = '*Not measured in this run: carried over unchanged from the run of';

/** The figures BENCH_ONLY asks for (all when unset). */
export function onlyFigures(only: string | undefined): string[] {
  const names = (only ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  for (const name of names) {
    if (!(name in FIGURES)) throw new Error(`BENCH_ONLY: no figure "${name}" (figures: ${Object.keys(FIGURES).join(', ')})`);
  }
  return names.length ? names : Object.keys(FIGURES);
}

/** Splits a report into its preamble and its `## ` sections (heading line included). */
function sections(markdown: string): { head: string; parts: string[] } {
  const pieces = markdown.split(/^(?=## )/m);
  return { head: pieces[0], parts: pieces.slice(1) };
}

/** The figure a section or summary row belongs to (`## 2. Echo…`, `| 2. Echo…`), if any. */
function figureOf(line: string): number | null {
  const match = /^(?:## |\| )(\d+)\. /.exec(line);
  return match ? Number(match[1]) : null;
}

/** The previous report's date line, for the note. */
function dateOf(markdown: string): string {
  return /^- \*\*Date\*\*: (.+)$/m.exec(markdown)?.[1] ?? 'an earlier run';
}

/**
 * `fresh` (rendered from this run) with the summary rows and sections of every figure not in
 * `measured` taken from `previous`.
 */
export function carryOver(fresh: string, previous: string | null, measured: string[]): string {
  const measuredNumbers = new Set(measured.map((name) => FIGURES[name]));
  const carried = Object.values(FIGURES).filter((n) => !measuredNumbers.has(n));
  if (!previous || carried.length === 0) return fresh;
  const before = sections(previous);
  const after = sections(fresh);
  const oldSection = (n: number) => before.parts.find((part) => figureOf(part) === n);
  const oldRows = (n: number) =>
    (before.parts.find((part) => part.startsWith('## Summary')) ?? '').split('\n').filter((line) => figureOf(line) === n);
  const date = dateOf(previous);
  // The limits section is written from this run's figures; carried rows that miss are named there.
  const missed = carried.flatMap((n) => oldRows(n).filter((row) => /\| \*\*no\*\* \|\s*$/.test(row)));
  const parts = after.parts.map((part) => {
    if (part.startsWith('## What limits') && missed.length) {
      const names = missed.map((row) => row.split('|')[1].trim().replace(/^(\d+)\. \(carried over\) /, '$1. '));
      return part.replace(
        /\n*$/,
        `\n- Carried over from earlier runs and not met there (see their sections and the notes of those runs): ${names.join('; ')}.\n\n`,
      );
    }
    if (part.startsWith('## Summary')) {
      const lines = part.split('\n');
      const out: string[] = [];
      let done = new Set<number>();
      for (const line of lines) {
        const n = figureOf(line);
        if (n === null || !carried.includes(n)) {
          out.push(line);
        } else if (!done.has(n)) {
          done = new Set([...done, n]);
          const rows = oldRows(n);
          // A row carried over before keeps its one mark.
          const mark = (row: string) => (row.includes('(carried over)') ? row : row.replace(/^\| (\d+)\. /, '| $1. (carried over) '));
          out.push(...(rows.length ? rows.map(mark) : [line]));
        }
      }
      return out.join('\n');
    }
    const n = figureOf(part);
    if (n === null || !carried.includes(n)) return part;
    const old = oldSection(n);
    if (!old) return part;
    // A section carried over before already names the run that measured it.
    if (old.includes(CARRIED_NOTE)) return old;
    const [heading, ...body] = old.split('\n');
    return [heading, '', `${CARRIED_NOTE} ${date}.*`, ...body].join('\n');
  });
  const note =
    `- **This run**: figures ${[...measuredNumbers].sort().join(', ')} (\`BENCH_ONLY=${measured.join(',')}\`); ` +
    `figures ${carried.join(', ')} are carried over from earlier runs, marked as such (each section names its run).\n`;
  const head = after.head.replace(/^(- \*\*Date\*\*: .+\n)/m, `$1${note}`);
  return head + parts.join('');
}
