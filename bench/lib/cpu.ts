// Where the machine's CPU goes during a transfer: the whole machine from /proc/stat, and each
// part of the path (Chromium's processes, burrow serve, the agents, sshd and its sftp-server)
// from /proc/<pid>/stat.
//
// A [`CpuWatch`] reads every process of a part every 20 ms while it runs and sums each one's
// own CPU time (utime + stime) from its first reading to its last. Children's times (cutime)
// are not used: sshd's session processes end with each native `sftp`, and their times did not
// reach the listener's children time (checked: a session hashing 300 MB added 2 ticks to it), so
// a process that ends is counted up to its last reading instead, at most 20 ms short. What no
// part holds (the native ssh client, the bench itself, the kernel's own work) is the rest: the
// machine's busy time less the parts.

import * as fs from 'node:fs';
import { median } from './stats';

/** The parts of the path, in the order the report lists them. */
export const PARTS = ['chromiumRenderer', 'chromiumNetwork', 'chromiumBrowser', 'chromiumOther', 'service', 'agents', 'sshd'] as const;
export type Part = (typeof PARTS)[number];

/** CPU ticks (USER_HZ) used over a while: the machine's busy and total, and each part's. */
export interface CpuUse {
  busy: number;
  total: number;
  parts: Record<Part, number>;
}

/** The part a process belongs to, from its command line; `null` for none of them. */
function partOf(argv: string[]): Part | null {
  const exe = argv[0] ?? '';
  if (/chrom(e|ium)/.test(exe)) {
    if (argv.includes('--type=renderer')) return 'chromiumRenderer';
    if (argv.some((a) => a.startsWith('--utility-sub-type=network.'))) return 'chromiumNetwork';
    // The browser process itself has no --type; File System Access writes go through it.
    if (!argv.some((a) => a.startsWith('--type='))) return 'chromiumBrowser';
    return 'chromiumOther';
  }
  if (/(^|\/)burrow$/.test(exe)) {
    if (argv[1] === 'serve') return 'service';
    if (argv[1] === 'agent') return 'agents';
    return null;
  }
  // sshd renames its session processes ("sshd: user [priv]", "sshd-session: …").
  if (/(^|\/)sshd\b|^sshd/.test(exe) || /(^|\/)sftp-server$/.test(exe)) return 'sshd';
  return null;
}

/** The machine's busy and total ticks so far (all cores). */
function machineTicks(): { busy: number; total: number } {
  const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const total = fields.reduce((x, y) => x + y, 0);
  // idle and iowait are not busy
  return { busy: total - fields[3] - fields[4], total };
}

/** One process seen by a watch: its part, and its own ticks at the first and the last reading. */
interface Seen {
  part: Part;
  first: number;
  last: number;
}

/** Watches the machine and every part's processes from `start` to `stop`. */
export class CpuWatch {
  private readonly seen = new Map<string, Seen>();
  /** Processes of no part, by pid: not read again (pids are not reused within seconds). */
  private readonly ignored = new Set<string>();
  private readonly machine0 = machineTicks();
  private readonly timer: NodeJS.Timeout;

  private constructor() {
    this.scan(true);
    this.timer = setInterval(() => this.scan(false), 20);
    // A transfer that throws before `stop` must not keep the bench's process alive.
    this.timer.unref();
  }

  /** Starts watching: every process running now is counted from now on. */
  static start(): CpuWatch {
    return new CpuWatch();
  }

  /** Stops watching and returns what was used meanwhile. */
  stop(): CpuUse {
    clearInterval(this.timer);
    this.scan(false);
    const machine = machineTicks();
    const parts = Object.fromEntries(PARTS.map((p) => [p, 0])) as Record<Part, number>;
    for (const seen of this.seen.values()) {
      parts[seen.part] += Math.max(0, seen.last - seen.first);
    }
    return { busy: machine.busy - this.machine0.busy, total: machine.total - this.machine0.total, parts };
  }

  private scan(initial: boolean): void {
    let entries: string[];
    try {
      entries = fs.readdirSync('/proc');
    } catch {
      return;
    }
    for (const pid of entries) {
      if (!/^\d+$/.test(pid) || this.ignored.has(pid)) continue;
      let stat: string;
      try {
        stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      } catch {
        continue; // gone meanwhile
      }
      // After "pid (comm) ": state is field 3; utime and stime are fields 14–15, starttime 22.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const key = `${pid}/${fields[19]}`;
      const ticks = Number(fields[11]) + Number(fields[12]);
      const known = this.seen.get(key);
      if (known) {
        known.last = ticks;
        continue;
      }
      let argv: string[];
      try {
        argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((x) => x.length > 0);
      } catch {
        continue;
      }
      // sshd's renamed processes put their whole title in argv[0].
      const part = partOf(argv.length === 1 ? argv[0].split(' ') : argv);
      if (!part) {
        this.ignored.add(pid);
        continue;
      }
      // A process that started after the watch did is counted from its start.
      this.seen.set(key, { part, first: initial ? ticks : 0, last: ticks });
    }
  }
}

/** `a` less `b` (a login's own use taken off a transfer that includes it), never below zero. */
export function cpuMinus(a: CpuUse, b: CpuUse): CpuUse {
  const parts = Object.fromEntries(PARTS.map((p) => [p, Math.max(0, a.parts[p] - b.parts[p])])) as Record<Part, number>;
  return { busy: Math.max(0, a.busy - b.busy), total: Math.max(0, a.total - b.total), parts };
}

/** The share of all cores busy in a delta (0–1). */
export function machineBusy(delta: CpuUse): number {
  return delta.total > 0 ? delta.busy / delta.total : NaN;
}

/**
 * Milliseconds of CPU per MB moved in a delta, for each part and the rest (the machine's busy
 * time less the parts), and the machine's total. Both count CPU time summed over cores.
 */
export function msPerMb(delta: CpuUse, bytes: number): PerMb {
  const tick = 1000 / 100; // ms per tick: USER_HZ is 100 on Linux
  const mb = bytes / 1e6;
  const out = {} as PerMb;
  let parts = 0;
  for (const p of PARTS) {
    parts += delta.parts[p];
    out[p] = (delta.parts[p] * tick) / mb;
  }
  out.total = (delta.busy * tick) / mb;
  out.rest = (Math.max(0, delta.busy - parts) * tick) / mb;
  return out;
}

/** CPU per MB by part, for one transfer (see [`msPerMb`]). */
export type PerMb = Record<Part | 'rest' | 'total', number>;

/** The median of each part over several transfers; `null` when there were none. */
export function partMedians(all: PerMb[]): PerMb | null {
  if (all.length === 0) return null;
  const keys = [...PARTS, 'rest', 'total'] as const;
  return Object.fromEntries(keys.map((k) => [k, median(all.map((r) => r[k]))])) as PerMb;
}
