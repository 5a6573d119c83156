// A Chromium CPU profile (DevTools `Profiler` domain) summarised as its top self-time functions.
//
// The benchmarks write profiles with BENCH_PROFILE=1; this turns one into a short table, so a
// run says where the page's main thread spent its time without opening DevTools.

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** One function's share of the profile. */
export interface SelfTime {
  name: string;
  ms: number;
  share: number;
}

/** The `count` functions with the most self time (idle and program time left in, named as such). */
export function topSelfTime(profile: unknown, count = 25): SelfTime[] {
  const p = profile as CpuProfile;
  const byId = new Map<number, ProfileNode>(p.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, number>();
  let all = 0;
  p.samples.forEach((id, i) => {
    const node = byId.get(id);
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    if (!node) return;
    const frame = node.callFrame;
    const file = frame.url ? frame.url.replace(/^.*\//, '') : '';
    const name = `${frame.functionName || '(anonymous)'}${file ? ` ${file}` : ''}`;
    totals.set(name, (totals.get(name) ?? 0) + dt);
    all += dt;
  });
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, ms]) => ({ name, ms, share: all > 0 ? ms / all : 0 }));
}

/** The summary as text lines: share, milliseconds, function. */
export function formatSelfTime(rows: SelfTime[]): string {
  return rows.map((r) => `${(r.share * 100).toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(7)} ms  ${r.name}`).join('\n');
}
