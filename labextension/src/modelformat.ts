/** Model registry values as the panel shows them and reads them from forms (pure: no DOM). */
import { formatValue } from './format';
import type { IGateResult } from './tokens';

/** "v1 → v2", with "–" for an alias that pointed nowhere. */
export function moveText(from: number | null, to: number | null): string {
  const v = (n: number | null) => (n === null ? '–' : `v${n}`);
  return `${v(from)} → ${v(to)}`;
}

/** A gate and its verdict in a few words: "accuracy>=0.8 ✓ (0.91)". */
export function gateText(g: IGateResult): string {
  const values =
    g.other !== undefined
      ? ` (${formatValue(g.value)} vs v${g.other_version} ${formatValue(g.other)})`
      : g.value !== undefined
        ? ` (${formatValue(g.value)})`
        : g.note
          ? ` (${g.note})`
          : '';
  return `${g.gate} ${g.passed ? '✓' : '✗'}${values}`;
}

/** Gates as typed: "accuracy>=0.8, f1>0.7" (commas, semicolons or new lines between them). */
export function parseGates(text: string): string[] {
  return text
    .split(/[,;\n]/)
    .map(g => g.trim())
    .filter(Boolean);
}

/** A model name from a notebook path: "work/churn v2.ipynb" → "churn_v2". */
export function modelNameFor(path: string): string {
  const stem = (path.split('/').pop() ?? '').replace(/\.ipynb$/, '');
  const name = stem.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^[^A-Za-z0-9]+/, '');
  return name || 'model';
}
