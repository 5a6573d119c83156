// Small statistics for the benchmark report: medians, percentiles and a run's spread.

/** The value at percentile `p` (0–100) of `values`, nearest rank; NaN when empty. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.round((p / 100) * (sorted.length - 1));
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

/** The median of `values`. */
export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** A set of runs of one figure: every value, its median, smallest and largest. */
export interface Runs {
  values: number[];
  median: number;
  min: number;
  max: number;
}

export function runs(values: number[]): Runs {
  const finite = values.filter((v) => Number.isFinite(v));
  return {
    values: finite,
    median: median(finite),
    min: finite.length ? Math.min(...finite) : NaN,
    max: finite.length ? Math.max(...finite) : NaN,
  };
}

/** Formats a number with `digits` decimals, or `–` when it is not a number. */
export function fmt(value: number | undefined | null, digits = 1): string {
  if (value === undefined || value === null || !Number.isFinite(value)) return '–';
  return value.toFixed(digits);
}

/** `median (min–max)` of runs. */
export function spread(r: Runs | undefined, digits = 1): string {
  if (!r || r.values.length === 0) return '–';
  return `${fmt(r.median, digits)} (${fmt(r.min, digits)}–${fmt(r.max, digits)})`;
}

/** `ours / native` of two medians, as `1.23×`. */
export function ratio(ours: Runs | undefined, native: Runs | undefined): string {
  if (!ours || !native || !Number.isFinite(ours.median) || !Number.isFinite(native.median) || native.median === 0) {
    return '–';
  }
  return `${(ours.median / native.median).toFixed(2)}×`;
}
