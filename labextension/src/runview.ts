/**
 * One run, opened: who ran it, its parameters and executor, and per stage its status,
 * time, why it ran or was reused, metrics and error. An error names the cell
 * of the user's notebook (`error.cell`), never the generated stage notebook's.
 */
import { stageColors } from './colors';
import { h } from './dom';
import { formatAuthor, formatDuration, formatValue } from './format';
import { reasonLabel } from './marks';
import { DONE_OK, Status, statusColour, statusText } from './status';
import { IRun, IStageError, IStageRun } from './tokens';

export interface IRunViewActions {
  /** Open the executed notebook of `stage` (read-only). */
  openNotebook: (stage: string) => void;
  /** Go to cell `index` of the user's notebook. */
  gotoCell: (index: number) => void;
  /** Register output `variable` of `stage` as a model version ("Register as model"). */
  registerModel?: (stage: string, variable: string) => void;
}

// Tables and arrays are data, not models: "Register as model" is offered for the other outputs.
const DATA_SERIALIZERS = ['pandas', 'numpy'];

/** The outputs of a stage that succeeded (or reused them from the cache) that could be models, each with "register as model". */
function modelOutputs(s: IStageRun, actions: IRunViewActions): HTMLElement | null {
  const register = actions.registerModel;
  const outputs = Object.entries(s.outputs ?? {}).filter(([, o]) => !DATA_SERIALIZERS.includes(o.serializer));
  if (!register || !DONE_OK.includes(s.status as Status) || !outputs.length) {
    return null;
  }
  return h(
    'ul',
    { className: 'nbops-StageOutputs nbops-Indent', 'aria-label': `Outputs of ${s.name}` },
    ...outputs.map(([name, o]) =>
      h(
        'li',
        { className: 'nbops-StageOutput', 'data-output': name },
        h('span', { title: o.type ?? o.serializer }, `output ${name}`),
        h('span', { className: 'nbops-Dim' }, ` ${o.type ?? o.serializer} `),
        h(
          'button',
          {
            className: 'nbops-LinkButton',
            title: `Register ${s.name}.${name} of this run as a model version`,
            'aria-label': `Register ${s.name}.${name} as model`,
            onclick: () => register(s.name, name)
          },
          'register as model'
        )
      )
    )
  );
}

/** A status badge, coloured as everywhere else (status.ts). */
export function statusBadge(status: string): HTMLElement {
  return h(
    'span',
    { className: `nbops-Status nbops-status-${status}`, style: `background: ${statusColour(status)}` },
    statusText(status)
  );
}

function executorName(executor: unknown): string {
  if (executor && typeof executor === 'object' && 'name' in executor) {
    return String((executor as { name: unknown }).name);
  }
  return formatValue(executor);
}

function errorView(error: IStageError, actions: IRunViewActions): HTMLElement {
  let where: Node | string | null = null;
  if (typeof error.cell === 'number') {
    const cell = error.cell;
    where = h(
      'button',
      { className: 'nbops-LinkButton nbops-ErrorCell', title: 'Go to the cell', onclick: () => actions.gotoCell(cell) },
      `cell ${cell}` + (error.first_line ? ` (${error.first_line})` : '')
    );
  } else if (error.generated) {
    where = 'in code nbops generated (loading inputs or saving outputs)';
  } else if (error.cell_note) {
    where = error.cell_note;
  }
  return h(
    'div',
    { className: 'nbops-Issue nbops-mod-error nbops-Indent', 'data-cell': error.cell ?? '' },
    `${error.ename}: ${error.evalue}`,
    where ? h('div', { className: 'nbops-Dim' }, 'in ', where) : null
  );
}

function stageLine(s: IStageRun, color: string | undefined, actions: IRunViewActions): HTMLElement {
  const metrics = Object.entries(s.metrics ?? {});
  return h(
    'li',
    { className: 'nbops-StageRun', 'data-stage': s.name, 'data-status': s.status },
    h('span', { className: 'nbops-Swatch', style: `background: ${color}` }),
    h('span', { className: 'nbops-StageRunName' }, s.name),
    statusBadge(s.status),
    s.duration_s !== null ? h('span', { className: 'nbops-Dim' }, ` ${formatDuration(s.duration_s)}`) : null,
    s.has_notebook
      ? h(
          'button',
          {
            className: 'nbops-LinkButton nbops-OpenNotebook',
            title: `Open the executed notebook of ${s.name} (read-only)`,
            'aria-label': `Open executed notebook ${s.name}`,
            onclick: () => actions.openNotebook(s.name)
          },
          'open'
        )
      : null,
    s.reason
      ? h(
          'div',
          { className: 'nbops-Reason nbops-Indent', 'data-reason': s.reason.kind, title: s.reason.detail },
          h('span', { className: 'nbops-ReasonKind' }, reasonLabel(s.reason)),
          h('span', { className: 'nbops-Dim' }, ` ${s.reason.detail}`)
        )
      : null,
    s.data?.length
      ? h(
          'ul',
          { className: 'nbops-DataInputs nbops-Indent', 'aria-label': `Data read by ${s.name}` },
          ...s.data.map(d =>
            h(
              'li',
              { className: 'nbops-DataInput', title: d.sha256 ?? 'missing when the stage ran' },
              h('span', {}, `reads ${d.kind === 'dir' ? 'folder ' : ''}${d.path}`),
              h('span', { className: 'nbops-Dim' }, ` ${d.sha256 ? d.sha256.slice(0, 12) : 'missing'}`)
            )
          )
        )
      : null,
    metrics.length
      ? h(
          'div',
          { className: 'nbops-Metrics nbops-Indent' },
          ...metrics.map(([k, v]) => h('span', { className: 'nbops-Metric' }, h('b', {}, k), ` ${formatValue(v)}`))
        )
      : null,
    modelOutputs(s, actions),
    s.error ? errorView(s.error, actions) : null
  );
}

export function renderRunDetail(run: IRun, actions: IRunViewActions): HTMLElement {
  const colors = stageColors(run.stages.map(s => s.name));
  const params = Object.entries(run.params ?? {});
  const author = formatAuthor(run);
  return h(
    'div',
    { className: 'nbops-RunDetail' },
    author ? h('div', { className: 'nbops-Dim nbops-RunBy' }, `run by ${author}`) : null,
    params.length
      ? h('div', { className: 'nbops-Dim' }, 'params: ' + params.map(([k, v]) => `${k}=${formatValue(v)}`).join(', '))
      : null,
    h('div', { className: 'nbops-Dim' }, `executor: ${executorName(run.executor)}`),
    h('ul', { className: 'nbops-StageRuns' }, ...run.stages.map(s => stageLine(s, colors.get(s.name), actions)))
  );
}
