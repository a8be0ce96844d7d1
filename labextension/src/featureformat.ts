/** Feature tables as the panel shows them: freshness words and lags (pure: no DOM). */
import type { IFreshness } from './tokens';

/** A lag or an age in the largest unit that fits: "45 s", "12 min", "3.5 h", "2 d". */
export function formatLag(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '';
  }
  for (const [unit, size] of [
    ['d', 86400],
    ['h', 3600],
    ['min', 60]
  ] as const) {
    if (seconds >= size) {
      return `${Number((seconds / size).toFixed(1))} ${unit}`;
    }
  }
  return `${Math.round(seconds)} s`;
}

/** The freshness chip: "fresh", "1 version behind", "not materialized". */
export function freshnessLabel(f: IFreshness | null | undefined): string {
  if (!f || f.status === 'never' || !f.materialized) {
    return 'not materialized';
  }
  if (f.status === 'behind') {
    const n = f.versions_behind ?? 0;
    return `${n} version${n === 1 ? '' : 's'} behind`;
  }
  return 'fresh';
}

/** "2026-11-01 → 2026-11-02" for a version's time range (dates only when they say enough). */
export function timeRange(min: string | null, max: string | null): string {
  if (!min || !max) {
    return '';
  }
  const short = (t: string) => t.replace('T00:00:00', '').replace(/\+00:00$|Z$/, '');
  return min === max ? short(min) : `${short(min)} → ${short(max)}`;
}
