/**
 * The "Features" section: the feature tables of the active notebook's store,
 * each with the freshness of its online copy (last materialized, versions
 * behind, lag of its newest feature time); one opened shows its versions
 * (rows, entities, time range, columns, where it came from). Read-only:
 * tables are published and materialized from notebooks and the CLI.
 */
import { h } from './dom';
import { errorText } from './errortext';
import { formatLag, freshnessLabel, timeRange } from './featureformat';
import { formatTime } from './format';
import { PipelineModel } from './model';
import { getFeatureTable, listFeatureTables } from './request';
import { StoreSection } from './storesection';
import { IFeatureTable, IFeatureTableDetail, IFeatureVersion, IFreshness } from './tokens';

function freshnessChip(f: IFreshness | null | undefined): HTMLElement {
  const status = f?.status ?? 'never';
  return h(
    'span',
    { className: `nbops-Freshness nbops-mod-${status}`, 'data-status': status, title: f?.summary ?? '' },
    freshnessLabel(f)
  );
}

/** A file online store by its name (the full path is in the tooltip); a URL (redis://) as it is. */
function shortStore(online: string): string {
  return online.includes('://') ? online : (online.split('/').pop() ?? online);
}

function freshnessView(f: IFreshness): HTMLElement {
  const rows: [string, string][] = f.materialized
    ? [
        ['online', `v${f.version} in ${shortStore(f.online)}`],
        ['last materialized', `${formatTime(f.materialized_at)} (${formatLag(f.age_seconds)} ago)`],
        ['lag', f.lag_seconds ? `newest feature time ${formatLag(f.lag_seconds)} behind the offline table` : 'none'],
        ['rows online', String(f.rows ?? '')]
      ]
    : [['online', f.summary]];
  return h(
    'dl',
    { className: 'nbops-FreshnessDetail', 'aria-label': `Freshness of ${f.name}`, title: `online store: ${f.online}` },
    ...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', { 'data-field': k }, v)])
  );
}

function versionLine(v: IFeatureVersion): HTMLElement {
  const source = v.run_id ? `from run ${v.run_id} · ${v.stage}.${v.var}` : 'published outside a run';
  const by = v.created_by ? ` · by ${v.created_by}` : '';
  return h(
    'li',
    { className: 'nbops-FeatureVersion', 'data-version': v.version },
    h('b', {}, `v${v.version}`),
    ` ${v.rows} rows · ${v.entities ?? '?'} entities`,
    v.breaking ? h('span', { className: 'nbops-Breaking', title: 'removed or retyped columns' }, ' breaking') : null,
    h('div', { className: 'nbops-Dim' }, timeRange(v.min_ts, v.max_ts)),
    h(
      'div',
      { className: 'nbops-Dim nbops-FeatureColumns', title: v.columns.map(c => `${c.name}: ${c.dtype}`).join('\n') },
      `${v.columns.length} columns: ${v.columns.map(c => c.name).join(', ')}`
    ),
    h('div', { className: 'nbops-Dim nbops-ModelSource' }, `${source} · ${formatTime(v.created_at)}${by}`)
  );
}

export class FeaturesSection extends StoreSection {
  constructor(model: PipelineModel) {
    super(model, 'Features');
    this._list = h('div', { className: 'nbops-FeatureTables' });
    this.body.append(this._list);
    this.render();
  }

  async refresh(): Promise<void> {
    const nb = this.model.notebook;
    if (!nb) {
      return;
    }
    const path = nb.context.localPath;
    try {
      const { tables } = await listFeatureTables(path);
      const names = new Set(tables.map(t => t.name));
      const open = [...this._open].filter(n => names.has(n));
      const details = await Promise.all(open.map(n => getFeatureTable(n, path)));
      if (nb !== this.model.notebook) {
        return;
      }
      this._tables = tables;
      details.forEach(d => this._details.set(d.name, d));
      this._error = null;
    } catch (error) {
      this._error = errorText(error);
    }
    if (nb === this.model.notebook) {
      this.draw();
    }
  }

  protected reset(): void {
    this._tables = [];
    this._error = null;
    this._open.clear();
    this._details.clear();
  }

  protected draw(): void {
    if (this._error) {
      this._list.replaceChildren(h('div', { className: 'nbops-Message nbops-mod-error', role: 'alert' }, this._error));
      return;
    }
    if (!this._tables.length) {
      const empty = this.model.notebook
        ? 'No feature tables yet: nbops.features.publish(df, NAME, entity=..., timestamp=...).'
        : '';
      this._list.replaceChildren(h('div', { className: 'nbops-Empty' }, empty));
      return;
    }
    this._list.replaceChildren(...this._tables.map(t => this._item(t)));
  }

  private async _toggle(name: string): Promise<void> {
    const nb = this.model.notebook;
    if (this._open.has(name) || !nb) {
      this._open.delete(name);
      this.draw();
      return;
    }
    this._open.add(name);
    try {
      const detail = await getFeatureTable(name, nb.context.localPath);
      if (nb !== this.model.notebook) {
        return;
      }
      this._details.set(name, detail);
    } catch (error) {
      this._error = errorText(error);
    }
    this.draw();
  }

  private _item(t: IFeatureTable): HTMLElement {
    const open = this._open.has(t.name);
    const detail = this._details.get(t.name);
    return h(
      'div',
      { className: 'nbops-Model nbops-FeatureTable', 'data-table': t.name },
      h(
        'button',
        {
          className: 'nbops-RunHeader',
          'aria-expanded': open ? 'true' : 'false',
          onclick: () => void this._toggle(t.name)
        },
        h('b', {}, t.name),
        h('span', { className: 'nbops-Dim' }, ` v${t.latest} `),
        freshnessChip(t.online)
      ),
      h('div', { className: 'nbops-Dim' }, `by ${t.entity} at ${t.timestamp}`),
      open && detail ? this._detail(detail, t.online) : null
    );
  }

  private _detail(d: IFeatureTableDetail, listed: IFreshness): HTMLElement {
    return h(
      'div',
      { className: 'nbops-ModelDetail' },
      d.description ? h('div', {}, d.description) : null,
      freshnessView(d.online ?? listed),
      h('div', { className: 'nbops-Subtitle' }, 'Versions'),
      h(
        'ul',
        { className: 'nbops-ModelVersions', 'aria-label': `Versions of ${d.name}` },
        ...[...d.versions].reverse().map(versionLine)
      )
    );
  }

  private readonly _list: HTMLElement;
  private _tables: IFeatureTable[] = [];
  private _error: string | null = null;
  private readonly _open = new Set<string>();
  private readonly _details = new Map<string, IFeatureTableDetail>();
}
