/**
 * Statuses of runs and stages and how the panel shows them: the mirror of
 * nbops/status.py (same words, icons and colours as the CLI and the report).
 */

export const PENDING = 'pending';
export const RUNNING = 'running';
export const SUCCEEDED = 'succeeded';
export const FAILED = 'failed';
export const CACHED = 'cached';
export const SKIPPED = 'skipped';
export const INTERRUPTED = 'interrupted';

export type StageStatus =
  typeof PENDING | typeof RUNNING | typeof SUCCEEDED | typeof FAILED | typeof CACHED | typeof SKIPPED;
export type RunStatus = typeof RUNNING | typeof SUCCEEDED | typeof FAILED | typeof INTERRUPTED;
export type Status = StageStatus | RunStatus;

/** A stage whose outputs downstream stages may use. */
export const DONE_OK: readonly Status[] = [SUCCEEDED, CACHED];

export const STAGE_STATUSES: readonly StageStatus[] = [PENDING, RUNNING, SUCCEEDED, FAILED, CACHED, SKIPPED];
export const RUN_STATUSES: readonly RunStatus[] = [RUNNING, SUCCEEDED, FAILED, INTERRUPTED];

export const ICON: Readonly<Record<Status, string>> = {
  [PENDING]: '·',
  [RUNNING]: '▶',
  [SUCCEEDED]: '✓',
  [FAILED]: '✗',
  [CACHED]: '↺',
  [SKIPPED]: '–',
  [INTERRUPTED]: '!'
};

/** CSS colours (white text reads on each, in light and dark themes). */
export const COLOUR: Readonly<Record<Status, string>> = {
  [PENDING]: '#9e9e9e',
  [RUNNING]: '#1976d2',
  [SUCCEEDED]: '#2e7d32',
  [FAILED]: '#c62828',
  [CACHED]: '#6a1b9a',
  [SKIPPED]: '#757575',
  [INTERRUPTED]: '#ef6c00'
};

/** The colour of `status`, grey for a status this version does not know. */
export function statusColour(status: string): string {
  return COLOUR[status as Status] ?? COLOUR[PENDING];
}

/** "✓ succeeded" */
export function statusText(status: string): string {
  const icon = ICON[status as Status];
  return icon ? `${icon} ${status}` : status;
}
