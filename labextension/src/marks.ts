/**
 * What each stage's cell band says besides its name: "stale" when the saved
 * notebook's plan would run the stage again, else its status in the last run.
 * Pure (plan and run in, marks out) so the rule is unit-tested without a lab.
 */
import { formatDuration, formatTime } from './format';
import { DONE_OK, ICON, RUNNING, StageStatus } from './status';
import type { IPlan, IReason, IRun, ReasonKind } from './tokens';

/** The reason kinds in a few words, for a label with little room. */
export const REASON_LABEL: Readonly<Record<ReasonKind, string>> = {
  'first-run': 'never run',
  code: 'code changed',
  params: 'parameters changed',
  upstream: 'upstream changed',
  input: 'input data changed',
  env: 'environment changed',
  'no-cache': 'cache bypassed',
  'cache-off': 'cache:off',
  cached: 'cached',
  resumed: 'resumed'
};

export const STALE = 'stale';

export interface IStageMark {
  /** `stale`, or the stage's status in the last run. */
  mark: typeof STALE | StageStatus;
  /** Short text shown on the band. */
  label: string;
  /** The longer text of its tooltip. */
  title: string;
}

/** "code changed" (an unknown kind is shown as it is). */
export function reasonLabel(reason: IReason | null | undefined): string {
  return reason ? (REASON_LABEL[reason.kind] ?? reason.kind) : '';
}

/**
 * stage name -> mark. Before the notebook's first run nothing is stale (and
 * nothing is marked); while a run goes on its statuses win over the plan,
 * which would only describe the run in progress. Only a stage that last
 * succeeded (or was reused) can go stale: a failed one runs again anyway,
 * and its band keeps saying it failed.
 */
export function stageMarks(plan: IPlan | null, lastRun: IRun | null): Map<string, IStageMark> {
  const marks = new Map<string, IStageMark>();
  if (!lastRun) {
    return marks;
  }
  const lastStatus = new Map(lastRun.stages.map(s => [s.name, s.status]));
  if (plan && lastRun.status !== RUNNING) {
    for (const stage of plan.stages) {
      const last = lastStatus.get(stage.name);
      if (stage.action === 'run' && last !== undefined && DONE_OK.includes(last)) {
        marks.set(stage.name, {
          mark: STALE,
          label: `${STALE} · ${reasonLabel(stage.reason)}`,
          title: `Runs again on the next run: ${stage.reason.detail}`
        });
      }
    }
  }
  for (const stage of lastRun.stages) {
    if (marks.has(stage.name)) {
      continue;
    }
    const when = formatTime(stage.ended_at ?? stage.started_at);
    const took = formatDuration(stage.duration_s);
    const reason = stage.reason ? ` (${stage.reason.kind}: ${stage.reason.detail})` : '';
    marks.set(stage.name, {
      mark: stage.status,
      label: [`${ICON[stage.status] ?? ''} ${stage.status}`.trim(), when].filter(Boolean).join(' · '),
      title: `Run ${lastRun.id}: ${stage.status}` + (when ? ` at ${when}` : '') + (took ? `, ${took}` : '') + reason
    });
  }
  return marks;
}
