/**
 * The "Runs" section: the notebook's runs, newest first, each with who ran it;
 * the newest (or a clicked one) opened. Its footer names the run store.
 */
import { h } from './dom';
import { errorText } from './errortext';
import { formatAuthor, formatDuration, formatStore, formatTime, formatValue } from './format';
import { PipelineModel } from './model';
import { statusColour } from './status';
import { IRunSummary } from './tokens';
import { renderRunDetail, statusBadge } from './runview';
import { gotoCell, PipelineSection } from './section';

/** Opens the executed notebook of `stage` in run `runId` (read-only); rejects with a message. */
export type OpenExecuted = (runId: string, stage: string, notebookPath: string) => Promise<void>;

/** "Register as model" on output `variable` of `stage` in run `runId`. */
export type RegisterModel = (runId: string, stage: string, variable: string) => void;

export class RunsSection extends PipelineSection {
  constructor(
    model: PipelineModel,
    private readonly _openExecuted: OpenExecuted,
    private readonly _registerModel: RegisterModel | null = null
  ) {
    super(model, 'Runs', ['runs']);
    this._list = h('div', { className: 'nbops-Runs' });
    this._message = h('div', { className: 'nbops-Message nbops-mod-error', role: 'alert', hidden: true });
    this._store = h('div', {
      className: 'nbops-Store nbops-Dim',
      role: 'note',
      'aria-label': 'Run store',
      // A database URL plus a bucket is long and has no spaces: let it wrap anywhere.
      style: 'margin-top: 6px; overflow-wrap: anywhere',
      hidden: true
    });
    this.body.append(
      h(
        'button',
        {
          className: 'jp-mod-styled nbops-Refresh',
          title: 'Refresh the runs',
          onclick: () => void model.refreshRuns()
        },
        'Refresh'
      ),
      this._message,
      this._list,
      this._store
    );
    this.render();
  }

  /** Bring the runs into view and refresh them. */
  show(): void {
    this.node.scrollIntoView({ block: 'start' });
    void this.model.refreshRuns();
  }

  render(): void {
    const model = this.model;
    if (model.notebook !== this._nb) {
      this._nb = model.notebook;
      this._auto.clear();
      this._user.clear();
      this._message.hidden = true;
    }
    this._renderStore();
    if (model.runsError) {
      this._list.replaceChildren(
        h('div', { className: 'nbops-Message nbops-mod-error', role: 'alert' }, model.runsError)
      );
      return;
    }
    const runs = model.runs;
    if (!runs.length) {
      this._list.replaceChildren(h('div', { className: 'nbops-Empty' }, model.notebook ? 'No runs yet.' : ''));
      return;
    }
    // The newest run is open by default; an older one only if the user opened it.
    if (!this._auto.has(runs[0].id)) {
      for (const id of this._auto) {
        if (!this._user.has(id)) {
          model.expanded.delete(id);
        }
      }
      this._auto.add(runs[0].id);
      model.expanded.add(runs[0].id);
    }
    this._list.replaceChildren(...runs.map(r => this._item(r)));
  }

  private _renderStore(): void {
    const store = this.model.store;
    this._store.hidden = !store;
    if (store) {
      this._store.dataset.kind = store.kind;
      this._store.textContent = `store: ${formatStore(store)}`;
      this._store.title = [
        `runs recorded in ${store.location}`,
        `objects in ${store.objects}`,
        store.source ? `set by ${store.source}` : ''
      ]
        .filter(Boolean)
        .join('\n');
    }
  }

  private _toggle(id: string): void {
    const expanded = this.model.expanded;
    if (expanded.has(id)) {
      expanded.delete(id);
      this._user.delete(id);
    } else {
      expanded.add(id);
      this._user.add(id);
    }
    this.render();
    void this.model.refreshRuns();
  }

  private _item(summary: IRunSummary): HTMLElement {
    const detail = this.model.run(summary.id);
    const run: IRunSummary = detail ?? summary;
    const open = this.model.expanded.has(run.id);
    const metrics = Object.entries(run.metrics ?? {});
    const author = formatAuthor(run);
    const header = h(
      'button',
      { className: 'nbops-RunHeader', 'aria-expanded': open ? 'true' : 'false', onclick: () => this._toggle(run.id) },
      statusBadge(run.status),
      h('span', { className: 'nbops-RunId' }, run.id),
      h('span', { className: 'nbops-Dim' }, ` ${formatTime(run.started_at)}`),
      run.duration_s !== null ? h('span', { className: 'nbops-Dim' }, ` · ${formatDuration(run.duration_s)}`) : null,
      author
        ? h('span', { className: 'nbops-Dim nbops-RunAuthor', title: 'who ran it, on which machine' }, ` · ${author}`)
        : null,
      !open && run.stages?.length
        ? h(
            'span',
            { className: 'nbops-StageDots' },
            ...run.stages.map(s =>
              h('span', {
                className: `nbops-StageDot nbops-status-${s.status}`,
                style: `background: ${statusColour(s.status)}`,
                title: `${s.name}: ${s.status}`
              })
            )
          )
        : null
    );
    return h(
      'div',
      { className: 'nbops-Run', 'data-run-id': run.id, 'data-status': run.status },
      header,
      metrics.length
        ? h(
            'div',
            { className: 'nbops-Metrics' },
            ...metrics.map(([k, v]) =>
              h('span', { className: 'nbops-Metric', 'data-metric': k }, h('b', {}, k), ` ${formatValue(v)}`)
            )
          )
        : null,
      open && detail
        ? renderRunDetail(detail, {
            openNotebook: stage => void this._open(run.id, stage),
            gotoCell: index => gotoCell(this.model.notebook, index),
            registerModel: this._registerModel
              ? (stage, variable) => this._registerModel?.(run.id, stage, variable)
              : undefined
          })
        : null
    );
  }

  private async _open(runId: string, stage: string): Promise<void> {
    const nb = this.model.notebook;
    if (!nb) {
      return;
    }
    try {
      await this._openExecuted(runId, stage, nb.context.localPath);
      this._message.hidden = true;
    } catch (error) {
      this._message.textContent = `Could not open the executed notebook: ${errorText(error)}`;
      this._message.hidden = false;
    }
  }

  private readonly _list: HTMLElement;
  private readonly _message: HTMLElement;
  private readonly _store: HTMLElement;
  private _nb: unknown = null;
  private readonly _auto = new Set<string>();
  private readonly _user = new Set<string>();
}
