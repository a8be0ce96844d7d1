/**
 * One registered model, opened: its aliases (each with "Roll back"), its
 * versions (metrics, the run, stage and variable each came from) and the
 * history of alias moves. Pure rendering: the Models section owns requests.
 */
import { h } from './dom';
import { formatTime, formatValue } from './format';
import { gateText, moveText } from './modelformat';
import { IAliasEvent, IModelDetail, IModelVersion } from './tokens';

export interface IModelViewActions {
  /** Move `alias` back to the version it held before. */
  rollback: (alias: string) => void;
  /** Pick `version` in the promote form. */
  choose: (version: number) => void;
}

/** "production v2" */
export function aliasChip(alias: string, version: number): HTMLElement {
  return h(
    'span',
    { className: 'nbops-AliasChip', 'data-alias': alias, title: `${alias} → v${version}` },
    `${alias} v${version}`
  );
}

function metrics(values: Record<string, unknown>): HTMLElement | null {
  const entries = Object.entries(values ?? {});
  return entries.length
    ? h(
        'div',
        { className: 'nbops-Metrics' },
        ...entries.map(([k, v]) =>
          h('span', { className: 'nbops-Metric', 'data-metric': k }, h('b', {}, k), ` ${formatValue(v)}`)
        )
      )
    : null;
}

function versionLine(v: IModelVersion, actions: IModelViewActions): HTMLElement {
  const by = v.created_by ? ` · by ${v.created_by}` : '';
  return h(
    'li',
    { className: 'nbops-ModelVersion', 'data-version': v.version },
    h(
      'div',
      { className: 'nbops-Row' },
      h('b', {}, `v${v.version}`),
      ...v.aliases.map(a => aliasChip(a, v.version)),
      h('span', { className: 'nbops-Dim', title: v.type ?? '' }, v.flavor),
      h('span', { className: 'nbops-Spacer' }),
      h(
        'button',
        {
          className: 'nbops-LinkButton',
          title: `Fill the promote form with v${v.version}`,
          'aria-label': `Promote v${v.version}`,
          onclick: () => actions.choose(v.version)
        },
        'promote'
      )
    ),
    metrics(v.metrics),
    h(
      'div',
      { className: 'nbops-Dim nbops-ModelSource', title: `sha256 ${v.sha256}` },
      `from run ${v.run_id} · ${v.stage}.${v.var} · ${formatTime(v.created_at)}${by}`
    ),
    v.message ? h('div', { className: 'nbops-Dim' }, `“${v.message}”`) : null
  );
}

function historyLine(e: IAliasEvent): HTMLElement {
  const gates = e.gates ?? [];
  return h(
    'li',
    { className: 'nbops-HistoryEvent', 'data-action': e.action, 'data-alias': e.alias, 'data-to': e.to ?? '' },
    h('span', { className: 'nbops-Dim' }, formatTime(e.at)),
    ' ',
    h('b', {}, e.action),
    ` ${e.alias} ${moveText(e.from, e.to)}`,
    e.user ? h('span', { className: 'nbops-Dim' }, ` · ${e.user}`) : null,
    e.message ? h('div', { className: 'nbops-Indent' }, `“${e.message}”`) : null,
    gates.length ? h('div', { className: 'nbops-Indent nbops-Dim' }, `gates: ${gates.map(gateText).join('; ')}`) : null
  );
}

/** Aliases, versions (newest first) and history (newest first) of `detail`; the promote form goes in `form`. */
export function renderModelDetail(
  detail: IModelDetail,
  history: IAliasEvent[],
  form: HTMLElement,
  actions: IModelViewActions
): HTMLElement {
  const aliases = Object.entries(detail.aliases);
  return h(
    'div',
    { className: 'nbops-ModelDetail' },
    h('div', { className: 'nbops-Subtitle' }, 'Aliases'),
    aliases.length
      ? h(
          'ul',
          { className: 'nbops-Aliases', 'aria-label': `Aliases of ${detail.name}` },
          ...aliases.map(([alias, version]) =>
            h(
              'li',
              { className: 'nbops-Alias nbops-Row', 'data-alias': alias, 'data-version': version },
              h('b', {}, alias),
              h('span', {}, ` → v${version}`),
              h('span', { className: 'nbops-Spacer' }),
              h(
                'button',
                {
                  className: 'nbops-LinkButton',
                  title: `Move ${alias} back to the version it held before v${version}`,
                  'aria-label': `Roll back ${alias}`,
                  onclick: () => actions.rollback(alias)
                },
                'roll back'
              )
            )
          )
        )
      : h('div', { className: 'nbops-Empty' }, 'No aliases yet: promote a version.'),
    form,
    h('div', { className: 'nbops-Subtitle' }, 'Versions'),
    h(
      'ul',
      { className: 'nbops-ModelVersions', 'aria-label': `Versions of ${detail.name}` },
      ...[...detail.versions].reverse().map(v => versionLine(v, actions))
    ),
    h('div', { className: 'nbops-Subtitle' }, 'History'),
    history.length
      ? h(
          'ul',
          { className: 'nbops-History', 'aria-label': `History of ${detail.name}` },
          ...[...history].reverse().map(historyLine)
        )
      : h('div', { className: 'nbops-Empty' }, 'No alias has moved yet.')
  );
}
