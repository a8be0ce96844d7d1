/**
 * The "Pipeline" side panel: follows the active notebook and shows its stages
 * (asked of the server, never computed here), the active cell's stage and tags
 * with controls to change them, the stage DAG, a run form and the runs.
 *
 * Tag edits go through the cell model's metadata API, so they are undoable,
 * saved with the notebook and shared in collaborative sessions.
 */
import { Cell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { decorateCells } from './cellbands';
import { stageColors } from './colors';
import { renderDag } from './dag';
import { formatDuration, formatTime, formatValue, h } from './dom';
import { fetchGraph, getRun, listRuns, NbopsRequestError, startRun } from './request';
import {
  CellRole,
  isValidStageName,
  readTags,
  RESOURCE_KEYS,
  resourceProblem,
  ResourceKey,
  ROLES,
  setAfter,
  setCacheOff,
  setResource,
  setRole,
  setStage
} from './tags';
import { IGraph, IIssue, IRun, IRunSummary } from './tokens';
import { NotebookWatcher } from './watcher';

const GRAPH_DEBOUNCE_MS = 500;
const POLL_MS = 1000;
const NEW_STAGE = '__nbops_new__';

export interface IPipelinePanelOptions {
  tracker: INotebookTracker;
  /** Open the executed notebook of `stage` in run `runId` (read-only). */
  openExecuted: (runId: string, stage: string, notebookPath: string) => Promise<void>;
}

function errorText(error: unknown): string {
  if (error instanceof NbopsRequestError) {
    return error.fix ? `${error.message} (fix: ${error.fix})` : error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

function executorName(executor: unknown): string {
  if (executor && typeof executor === 'object' && 'name' in executor) {
    return String((executor as { name: unknown }).name);
  }
  return formatValue(executor);
}

function cellTags(cell: Cell): string[] {
  const tags = cell.model.getMetadata('tags');
  return Array.isArray(tags) ? tags.filter((t): t is string => typeof t === 'string') : [];
}

function section(label: string, ...children: (Node | null)[]): HTMLElement {
  return h(
    'section',
    { className: 'nbops-Section', 'aria-label': label },
    h('h3', { className: 'nbops-SectionTitle' }, label),
    ...children
  );
}

export class PipelinePanel extends Widget {
  constructor(options: IPipelinePanelOptions) {
    super();
    this._tracker = options.tracker;
    this._openExecuted = options.openExecuted;
    this.id = 'nbops-pipeline';
    this.addClass('nbops-PipelinePanel');
    this.title.caption = 'Pipeline (nbops)';

    this._header = h('div', { className: 'nbops-Header' });
    this._cellBody = h('div', { className: 'nbops-CellEditor' });
    this._dagBody = h('div', { className: 'nbops-DagBox' });
    this._stageList = h('ul', { className: 'nbops-StageList' });
    this._issueBody = h('div', { className: 'nbops-Issues' });
    this._paramBody = h('div', { className: 'nbops-Params' });
    this._runMessage = h('div', { className: 'nbops-Message', role: 'status' });
    this._runsBody = h('div', { className: 'nbops-Runs' });
    this._executor = h(
      'select',
      { className: 'nbops-Select', 'aria-label': 'Executor' },
      h('option', { value: 'local' }, 'local'),
      h('option', { value: 'ray' }, 'ray')
    );
    this._runButton = h(
      'button',
      { className: 'jp-mod-styled jp-mod-accept nbops-RunButton', onclick: () => void this.runPipeline() },
      'Run pipeline'
    );
    this._runsSection = section(
      'Runs',
      h(
        'button',
        { className: 'jp-mod-styled nbops-Refresh', title: 'Refresh the runs', onclick: () => void this._refreshRuns() },
        'Refresh'
      ),
      this._runsBody
    );
    this.node.append(
      this._header,
      section('Cell', this._cellBody),
      section('Stages', this._dagBody, this._stageList, this._issueBody),
      section(
        'Run',
        this._paramBody,
        h('div', { className: 'nbops-Row' }, h('label', {}, 'Executor'), this._executor),
        h('div', { className: 'nbops-Row' }, this._runButton),
        this._runMessage
      ),
      this._runsSection
    );
    // Re-render the cell editor once the user leaves a field it held back for.
    this._cellBody.addEventListener('focusout', () => {
      if (this._cellDirty) {
        requestAnimationFrame(() => this._renderCell());
      }
    });

    this._tracker.currentChanged.connect(this._onCurrentChanged, this);
    this._tracker.activeCellChanged.connect(() => this._renderCell(), this);
    this._onCurrentChanged();
  }

  dispose(): void {
    this._watcher?.dispose();
    window.clearTimeout(this._graphTimer);
    window.clearTimeout(this._pollTimer);
    super.dispose();
  }

  /** The notebook the panel follows. */
  get notebook(): NotebookPanel | null {
    return this._nb;
  }

  /** Names of the stages in the current graph, in order. */
  get stageNames(): string[] {
    return this._graph?.stages.map(s => s.name) ?? [];
  }

  /** Put the selected cells (or the active one) in stage `name`. */
  assignStage(name: string | null): void {
    this._editSelected(tags => setStage(tags, name));
  }

  /** Save the notebook if needed and start a run with the form's parameters. */
  async runPipeline(): Promise<void> {
    const nb = this._nb;
    if (!nb) {
      this._setRunMessage('Open a notebook first.', true);
      return;
    }
    this._runButton.disabled = true;
    try {
      if (nb.context.model.dirty) {
        await nb.context.save();
      }
      const params: Record<string, string> = {};
      for (const p of this._graph?.parameters ?? []) {
        const value = this._paramValues.get(p.name);
        if (value !== undefined && value !== this._defaultText(p.default)) {
          params[p.name] = value;
        }
      }
      const id = await startRun(nb.context.localPath, params, this._executor.value);
      this._setRunMessage(`Started run ${id}.`, false);
      await this._refreshRuns();
    } catch (error) {
      this._setRunMessage(`Could not start the run: ${errorText(error)}`, true);
    } finally {
      this._updateRunButton();
    }
  }

  /** Bring the runs list into view and refresh it. */
  showRuns(): void {
    this._runsSection.scrollIntoView({ block: 'start' });
    void this._refreshRuns();
  }

  private _onCurrentChanged(): void {
    const nb = this._tracker.currentWidget;
    if (nb === this._nb) {
      return;
    }
    this._watcher?.dispose();
    this._watcher = null;
    if (this._nb && !this._nb.isDisposed) {
      decorateCells(this._nb.content, null, new Map());
    }
    this._nb = nb;
    this._graph = null;
    this._graphError = null;
    this._runs = [];
    this._runsError = null;
    this._details.clear();
    this._expanded.clear();
    this._userExpanded.clear();
    this._paramSignature = '';
    this._paramValues.clear();
    window.clearTimeout(this._pollTimer);
    this._renderAll();
    if (!nb) {
      return;
    }
    void nb.context.ready.then(() => {
      if (nb !== this._nb || nb.isDisposed || !nb.model) {
        return;
      }
      this._watcher = new NotebookWatcher(
        nb.model,
        () => this._scheduleGraph(),
        cell => {
          if (cell === nb.content.activeCell?.model) {
            this._renderCell();
          }
        }
      );
      this._renderHeader();
      void this._refreshGraph();
      void this._refreshRuns();
    });
  }

  private _scheduleGraph(): void {
    window.clearTimeout(this._graphTimer);
    this.node.dataset.graphState = 'pending';
    this._graphTimer = window.setTimeout(() => void this._refreshGraph(), GRAPH_DEBOUNCE_MS);
  }

  private async _refreshGraph(): Promise<void> {
    const nb = this._nb;
    if (!nb || !nb.model) {
      return;
    }
    const seq = ++this._graphSeq;
    this.node.dataset.graphState = 'loading';
    try {
      const graph = await fetchGraph(nb.context.localPath, nb.model.toJSON());
      if (seq !== this._graphSeq || nb !== this._nb) {
        return;
      }
      this._graph = graph;
      this._graphError = null;
    } catch (error) {
      if (seq !== this._graphSeq || nb !== this._nb) {
        return;
      }
      this._graphError = errorText(error);
    }
    this.node.dataset.graphState = this._graphError ? 'error' : 'ready';
    this._renderAll();
  }

  private _decorate(): void {
    if (this._nb) {
      decorateCells(this._nb.content, this._graph, stageColors(this.stageNames));
    }
  }

  private _renderAll(): void {
    this._renderHeader();
    this._renderCell();
    this._renderStages();
    this._renderParams();
    this._renderRuns();
    this._decorate();
    this._updateRunButton();
  }

  private _renderHeader(): void {
    const nb = this._nb;
    const g = this._graph;
    const summary = g
      ? `${g.stages.length} stage${g.stages.length === 1 ? '' : 's'}` +
        (g.errors.length ? `, ${g.errors.length} error${g.errors.length === 1 ? '' : 's'}` : '')
      : '';
    this._header.replaceChildren(
      h('h2', { className: 'nbops-Title' }, 'Pipeline'),
      nb
        ? h(
            'div',
            { className: 'nbops-NotebookName', title: nb.context.localPath },
            nb.context.localPath,
            summary ? h('span', { className: 'nbops-Summary' }, ` · ${summary}`) : null
          )
        : h('div', { className: 'nbops-Empty' }, 'Open a notebook to see its pipeline.'),
      this._graphError ? h('div', { className: 'nbops-Message nbops-mod-error', role: 'alert' }, this._graphError) : ''
    );
  }

  // -- the active cell ------------------------------------------------------

  private _renderCell(): void {
    const focused = document.activeElement as HTMLElement | null;
    if (focused && this._cellBody.contains(focused) && focused.tagName === 'INPUT' && focused.getAttribute('type') !== 'checkbox') {
      this._cellDirty = true; // never pull a field out from under the user's typing
      return;
    }
    this._cellDirty = false;
    const focusField = focused && this._cellBody.contains(focused) ? focused.dataset.field : undefined;
    this._cellBody.replaceChildren(...this._cellContent());
    if (focusField) {
      this._cellBody.querySelector<HTMLElement>(`[data-field="${focusField}"]`)?.focus();
    }
  }

  private _cellContent(): Node[] {
    const nb = this._nb;
    const cell = nb?.content.activeCell;
    if (!nb || !cell) {
      return [h('div', { className: 'nbops-Empty' }, nb ? 'Select a cell.' : 'No notebook.')];
    }
    const index = nb.content.activeCellIndex;
    if (cell.model.type !== 'code') {
      return [h('div', { className: 'nbops-Empty' }, `Cell ${index} is ${cell.model.type}: stages are made of code cells.`)];
    }
    const tags = readTags(cellTags(cell));
    const info = this._graph?.cells[index];
    const stages = this.stageNames;
    if (tags.stage && !stages.includes(tags.stage)) {
      stages.push(tags.stage);
    }
    const colors = stageColors(stages);
    // A cell of the implicit stage (an untagged notebook) is in no named stage.
    const inherited = info?.stage && this.stageNames.includes(info.stage) ? info.stage : null;
    const currentStage = tags.stage ?? inherited;
    const where = tags.role && tags.role !== 'metrics'
      ? `a ${tags.role} cell`
      : tags.stage
        ? `starts stage ${tags.stage}`
        : currentStage
          ? `in stage ${currentStage} (continues the stage above)`
          : 'in no stage';
    const out: Node[] = [];
    out.push(
      h(
        'div',
        { className: 'nbops-CellSummary', 'data-stage': currentStage ?? '' },
        currentStage ? h('span', { className: 'nbops-Swatch', style: `background: ${colors.get(currentStage)}` }) : null,
        `Cell ${index}: ${where}`
      )
    );

    const stageSelect = h(
      'select',
      {
        className: 'nbops-Select',
        'aria-label': 'Stage',
        'data-field': 'stage',
        onchange: (e: Event) => {
          const value = (e.target as HTMLSelectElement).value;
          if (value === NEW_STAGE) {
            this._showNewStage = true;
            this._renderCell();
            this._cellBody.querySelector<HTMLInputElement>('[data-field="new-stage"]')?.focus();
          } else {
            this._showNewStage = false;
            this.assignStage(value || null);
          }
        }
      },
      h('option', { value: '' }, '(none: continue the stage above)'),
      ...stages.map(s => h('option', { value: s }, s)),
      h('option', { value: NEW_STAGE }, 'New stage…')
    );
    stageSelect.value = tags.stage ?? '';
    out.push(h('div', { className: 'nbops-Row' }, h('label', {}, 'Stage'), stageSelect));

    if (this._showNewStage) {
      const input = h('input', {
        className: 'jp-mod-styled nbops-Input',
        type: 'text',
        'aria-label': 'New stage name',
        'data-field': 'new-stage',
        placeholder: 'e.g. train',
        onkeydown: (e: Event) => {
          if ((e as KeyboardEvent).key === 'Enter') {
            add();
          }
        }
      });
      const add = () => {
        const name = input.value.trim();
        if (!isValidStageName(name)) {
          this._cellMessage = `"${name}" is not a valid stage name: use letters, digits and _, not starting with a digit.`;
          input.blur();
          this._renderCell();
          return;
        }
        this._showNewStage = false;
        input.blur();
        this.assignStage(name);
      };
      out.push(
        h(
          'div',
          { className: 'nbops-Row' },
          h('label', {}, 'New'),
          input,
          h('button', { className: 'jp-mod-styled', onclick: add }, 'Assign')
        )
      );
    }

    const roleSelect = h(
      'select',
      {
        className: 'nbops-Select',
        'aria-label': 'Role',
        'data-field': 'role',
        onchange: (e: Event) => {
          const value = (e.target as HTMLSelectElement).value as CellRole | '';
          this._editActive(t => setRole(t, value || null));
        }
      },
      h('option', { value: '' }, '(stage code)'),
      ...ROLES.map(r => h('option', { value: r }, r))
    );
    roleSelect.value = tags.role ?? '';
    out.push(h('div', { className: 'nbops-Row' }, h('label', {}, 'Role'), roleSelect));

    const afterChoices = stages.filter(s => s !== currentStage);
    if (afterChoices.length || tags.after.length) {
      const names = [...afterChoices, ...tags.after.filter(a => !afterChoices.includes(a))];
      out.push(
        h(
          'div',
          { className: 'nbops-Row nbops-After' },
          h('label', {}, 'After'),
          h(
            'div',
            { className: 'nbops-Checks' },
            ...names.map(name =>
              h(
                'label',
                { className: 'nbops-Check' },
                h('input', {
                  type: 'checkbox',
                  'aria-label': `after ${name}`,
                  'data-field': `after-${name}`,
                  checked: tags.after.includes(name),
                  onchange: (e: Event) => {
                    const on = (e.target as HTMLInputElement).checked;
                    const next = on ? [...tags.after, name] : tags.after.filter(a => a !== name);
                    this._editActive(t => setAfter(t, next));
                  }
                }),
                name
              )
            )
          )
        )
      );
    }

    const grid = h('div', { className: 'nbops-Resources' });
    for (const key of RESOURCE_KEYS) {
      const input = h('input', {
        className: 'jp-mod-styled nbops-Input',
        type: 'text',
        'aria-label': key,
        'data-field': key,
        value: tags.resources[key] ?? '',
        placeholder: key === 'memory' ? '4Gi' : key === 'timeout' ? '600' : '',
        title: key === 'timeout' ? 'timeout in seconds' : key === 'memory' ? 'memory, e.g. 512M or 4Gi' : key,
        onkeydown: (e: Event) => {
          if ((e as KeyboardEvent).key === 'Enter') {
            (e.target as HTMLInputElement).blur();
          }
        },
        onchange: (e: Event) => this._setResource(key, (e.target as HTMLInputElement).value)
      });
      grid.append(h('label', { className: 'nbops-ResourceLabel' }, key), input);
    }
    out.push(grid);

    out.push(
      h(
        'label',
        { className: 'nbops-Check' },
        h('input', {
          type: 'checkbox',
          'aria-label': 'cache:off',
          'data-field': 'cache',
          checked: tags.cacheOff,
          onchange: (e: Event) => {
            const off = (e.target as HTMLInputElement).checked;
            this._editActive(t => setCacheOff(t, off));
          }
        }),
        'cache:off (always rerun this stage)'
      )
    );
    const issues = this._issuesOf(index);
    if (issues.length) {
      out.push(h('div', { className: 'nbops-CellIssues' }, ...issues.map(i => this._issueLine(i, false))));
    }
    if (this._cellMessage) {
      out.push(h('div', { className: 'nbops-Message nbops-mod-error', role: 'alert' }, this._cellMessage));
    }
    return out;
  }

  private _setResource(key: ResourceKey, value: string): void {
    const problem = value.trim() ? resourceProblem(key, value) : null;
    if (problem) {
      this._cellMessage = problem;
      this._renderCell();
      return;
    }
    this._editActive(t => setResource(t, key, value));
  }

  private _editActive(edit: (tags: string[]) => string[]): void {
    const cell = this._nb?.content.activeCell;
    this._edit(cell ? [cell] : [], edit);
  }

  private _editSelected(edit: (tags: string[]) => string[]): void {
    const notebook = this._nb?.content;
    if (!notebook) {
      return;
    }
    this._edit(
      notebook.widgets.filter(c => notebook.isSelectedOrActive(c)),
      edit
    );
  }

  private _edit(cells: readonly Cell[], edit: (tags: string[]) => string[]): void {
    this._cellMessage = '';
    for (const cell of cells) {
      if (cell.model.type !== 'code') {
        continue;
      }
      const before = cellTags(cell);
      let after: string[];
      try {
        after = edit(before);
      } catch (error) {
        this._cellMessage = errorText(error);
        break;
      }
      if (after.join('\n') === before.join('\n')) {
        continue;
      }
      if (after.length) {
        cell.model.setMetadata('tags', after);
      } else {
        cell.model.deleteMetadata('tags');
      }
    }
    this._renderCell();
  }

  // -- stages, DAG and issues -----------------------------------------------

  private _issuesOf(index: number): IIssue[] {
    const g = this._graph;
    return g ? [...g.errors, ...g.warnings].filter(i => i.cell === index) : [];
  }

  private _issueLine(issue: IIssue, withCell: boolean): HTMLElement {
    const goto =
      withCell && issue.cell !== null
        ? h(
            'button',
            {
              className: 'nbops-LinkButton',
              title: 'Go to the cell',
              onclick: () => this._gotoCell(issue.cell as number)
            },
            `cell ${issue.cell}`
          )
        : null;
    return h(
      'div',
      { className: `nbops-Issue nbops-mod-${issue.kind}`, 'data-cell': issue.cell ?? '' },
      h('span', { className: 'nbops-IssueKind' }, issue.kind),
      goto,
      h('span', {}, ` ${issue.message}`),
      issue.fix ? h('div', { className: 'nbops-IssueFix' }, `fix: ${issue.fix}`) : null
    );
  }

  private _gotoCell(index: number): void {
    const nb = this._nb;
    if (!nb || index < 0 || index >= nb.content.widgets.length) {
      return;
    }
    nb.content.activeCellIndex = index;
    void nb.content.scrollToItem(index);
  }

  private _renderStages(): void {
    const g = this._graph;
    if (!g) {
      this._dagBody.replaceChildren(h('div', { className: 'nbops-Empty' }, this._nb ? 'Reading the stages…' : ''));
      this._stageList.replaceChildren();
      this._issueBody.replaceChildren();
      return;
    }
    const colors = stageColors(this.stageNames);
    this._dagBody.replaceChildren(
      g.stages.length
        ? renderDag(g, colors)
        : h('div', { className: 'nbops-Empty' }, 'No stages yet: tag a code cell stage:NAME, or pick a stage for the active cell above.')
    );
    this._stageList.replaceChildren(
      ...g.stages.map(s => {
        const res = s.resources;
        const extras = [
          res.gpus ? `gpus ${res.gpus}` : '',
          res.cpus ? `cpus ${res.cpus}` : '',
          res.memory ? `memory ${res.memory}` : '',
          res.timeout ? `timeout ${res.timeout}s` : '',
          res.retries ? `retries ${res.retries}` : '',
          s.cache ? '' : 'cache off'
        ].filter(Boolean);
        return h(
          'li',
          { className: 'nbops-Stage', 'data-stage': s.name },
          h('span', { className: 'nbops-Swatch', style: `background: ${colors.get(s.name)}` }),
          h(
            'button',
            {
              className: 'nbops-LinkButton nbops-StageName',
              title: `Go to the first cell of ${s.name}`,
              onclick: () => this._gotoCell(s.cells[0] ?? -1)
            },
            s.name
          ),
          h('span', { className: 'nbops-Dim' }, ` cells ${s.cells.join(', ')}`),
          s.outputs.length ? h('div', { className: 'nbops-Dim nbops-Indent' }, `→ ${s.outputs.join(', ')}`) : null,
          extras.length ? h('div', { className: 'nbops-Dim nbops-Indent' }, extras.join(' · ')) : null
        );
      })
    );
    const issues = [...g.errors, ...g.warnings];
    this._issueBody.replaceChildren(...issues.map(i => this._issueLine(i, true)));
  }

  // -- the run form -----------------------------------------------------------

  private _defaultText(value: unknown): string {
    return typeof value === 'string' ? value : JSON.stringify(value);
  }

  private _renderParams(): void {
    const params = this._graph?.parameters ?? [];
    const signature = params.map(p => `${p.name}:${p.type}:${this._defaultText(p.default)}`).join('|');
    if (signature === this._paramSignature && this._paramBody.childElementCount) {
      return; // keep what the user typed
    }
    this._paramSignature = signature;
    if (!params.length) {
      this._paramBody.replaceChildren(h('div', { className: 'nbops-Empty' }, 'No parameters (tag a cell "parameters").'));
      return;
    }
    this._paramBody.replaceChildren(
      h('div', { className: 'nbops-Subtitle' }, 'Parameters'),
      ...params.map(p => {
        const value = this._paramValues.get(p.name) ?? this._defaultText(p.default);
        return h(
          'div',
          { className: 'nbops-Row' },
          h('label', { title: p.type }, p.name, h('span', { className: 'nbops-Dim' }, ` ${p.type}`)),
          h('input', {
            className: 'jp-mod-styled nbops-Input',
            type: 'text',
            'aria-label': `parameter ${p.name}`,
            value,
            oninput: (e: Event) => this._paramValues.set(p.name, (e.target as HTMLInputElement).value)
          })
        );
      })
    );
  }

  private _updateRunButton(): void {
    const errors = this._graph?.errors.length ?? 0;
    this._runButton.disabled = !this._nb || !this._graph || errors > 0 || !this._graph.stages.length;
    this._runButton.title = errors ? 'Fix the errors in the stage graph first' : 'Save the notebook and run its pipeline';
  }

  private _setRunMessage(text: string, isError: boolean): void {
    this._runMessage.textContent = text;
    this._runMessage.classList.toggle('nbops-mod-error', isError);
  }

  // -- runs -------------------------------------------------------------------

  private async _refreshRuns(): Promise<void> {
    const nb = this._nb;
    window.clearTimeout(this._pollTimer);
    if (!nb) {
      return;
    }
    const path = nb.context.localPath;
    try {
      const runs = await listRuns(path);
      if (nb !== this._nb) {
        return;
      }
      this._runs = runs;
      this._runsError = null;
      // The newest run is open by default; an older one only if the user opened it.
      if (runs.length && !this._autoExpanded.has(runs[0].id)) {
        for (const id of this._autoExpanded) {
          if (!this._userExpanded.has(id)) {
            this._expanded.delete(id);
          }
        }
        this._autoExpanded.add(runs[0].id);
        this._expanded.add(runs[0].id);
      }
      const wanted = runs.filter(r => {
        const known = this._details.get(r.id);
        return this._expanded.has(r.id) && (!known || known.status === 'running' || r.status === 'running' || known.status !== r.status);
      });
      const details = await Promise.all(wanted.map(r => getRun(r.id, path)));
      if (nb !== this._nb) {
        return;
      }
      details.forEach(d => this._details.set(d.id, d));
    } catch (error) {
      if (nb !== this._nb) {
        return;
      }
      this._runsError = errorText(error);
    }
    this._renderRuns();
    const running = this._runs.some(r => r.status === 'running') || [...this._details.values()].some(d => d.status === 'running');
    if (running && !this._runsError) {
      this._pollTimer = window.setTimeout(() => void this._refreshRuns(), POLL_MS);
    }
  }

  private _renderRuns(): void {
    if (this._runsError) {
      this._runsBody.replaceChildren(h('div', { className: 'nbops-Message nbops-mod-error', role: 'alert' }, this._runsError));
      return;
    }
    if (!this._runs.length) {
      this._runsBody.replaceChildren(h('div', { className: 'nbops-Empty' }, this._nb ? 'No runs yet.' : ''));
      return;
    }
    this._runsBody.replaceChildren(...this._runs.map(r => this._runItem(r)));
  }

  private _runItem(summary: IRunSummary): HTMLElement {
    const detail = this._details.get(summary.id);
    const run: IRunSummary = detail ?? summary;
    const open = this._expanded.has(run.id);
    const metrics = Object.entries(run.metrics ?? {});
    const header = h(
      'button',
      {
        className: 'nbops-RunHeader',
        'aria-expanded': open ? 'true' : 'false',
        onclick: () => {
          if (open) {
            this._expanded.delete(run.id);
            this._userExpanded.delete(run.id);
          } else {
            this._expanded.add(run.id);
            this._userExpanded.add(run.id);
          }
          this._renderRuns();
          void this._refreshRuns();
        }
      },
      h('span', { className: `nbops-Status nbops-status-${run.status}` }, run.status),
      h('span', { className: 'nbops-RunId' }, run.id),
      h('span', { className: 'nbops-Dim' }, ` ${formatTime(run.started_at)}`),
      run.duration_s !== null ? h('span', { className: 'nbops-Dim' }, ` · ${formatDuration(run.duration_s)}`) : null,
      !open && run.stages?.length
        ? h(
            'span',
            { className: 'nbops-StageDots' },
            ...run.stages.map(s =>
              h('span', { className: `nbops-StageDot nbops-status-${s.status}`, title: `${s.name}: ${s.status}` })
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
      open && detail ? this._runDetail(detail) : null
    );
  }

  private _runDetail(run: IRun): HTMLElement {
    const colors = stageColors(run.stages.map(s => s.name));
    const params = Object.entries(run.params ?? {});
    return h(
      'div',
      { className: 'nbops-RunDetail' },
      params.length
        ? h('div', { className: 'nbops-Dim' }, 'params: ' + params.map(([k, v]) => `${k}=${formatValue(v)}`).join(', '))
        : null,
      h('div', { className: 'nbops-Dim' }, `executor: ${executorName(run.executor)}`),
      h(
        'ul',
        { className: 'nbops-StageRuns' },
        ...run.stages.map(s =>
          h(
            'li',
            { className: 'nbops-StageRun', 'data-stage': s.name, 'data-status': s.status },
            h('span', { className: 'nbops-Swatch', style: `background: ${colors.get(s.name)}` }),
            h('span', { className: 'nbops-StageRunName' }, s.name),
            h('span', { className: `nbops-Status nbops-status-${s.status}` }, s.status),
            s.duration_s !== null ? h('span', { className: 'nbops-Dim' }, ` ${formatDuration(s.duration_s)}`) : null,
            s.has_notebook
              ? h(
                  'button',
                  {
                    className: 'nbops-LinkButton nbops-OpenNotebook',
                    title: `Open the executed notebook of ${s.name} (read-only)`,
                    'aria-label': `Open executed notebook ${s.name}`,
                    onclick: () => void this._open(run.id, s.name)
                  },
                  'open'
                )
              : null,
            Object.keys(s.metrics ?? {}).length
              ? h(
                  'div',
                  { className: 'nbops-Metrics nbops-Indent' },
                  ...Object.entries(s.metrics).map(([k, v]) =>
                    h('span', { className: 'nbops-Metric' }, h('b', {}, k), ` ${formatValue(v)}`)
                  )
                )
              : null,
            s.error
              ? h(
                  'div',
                  { className: 'nbops-Issue nbops-mod-error nbops-Indent' },
                  `${s.error.ename}: ${s.error.evalue}` + (s.error.cell_index !== null ? ` (cell ${s.error.cell_index})` : '')
                )
              : null
          )
        )
      )
    );
  }

  private async _open(runId: string, stage: string): Promise<void> {
    const nb = this._nb;
    if (!nb) {
      return;
    }
    try {
      await this._openExecuted(runId, stage, nb.context.localPath);
    } catch (error) {
      this._setRunMessage(`Could not open the executed notebook: ${errorText(error)}`, true);
    }
  }

  private readonly _tracker: INotebookTracker;
  private readonly _openExecuted: IPipelinePanelOptions['openExecuted'];
  private readonly _header: HTMLElement;
  private readonly _cellBody: HTMLElement;
  private readonly _dagBody: HTMLElement;
  private readonly _stageList: HTMLElement;
  private readonly _issueBody: HTMLElement;
  private readonly _paramBody: HTMLElement;
  private readonly _runMessage: HTMLElement;
  private readonly _runsBody: HTMLElement;
  private readonly _runsSection: HTMLElement;
  private readonly _executor: HTMLSelectElement;
  private readonly _runButton: HTMLButtonElement;
  private _nb: NotebookPanel | null = null;
  private _watcher: NotebookWatcher | null = null;
  private _graph: IGraph | null = null;
  private _graphError: string | null = null;
  private _graphSeq = 0;
  private _graphTimer = 0;
  private _pollTimer = 0;
  private _cellMessage = '';
  private _cellDirty = false;
  private _showNewStage = false;
  private _paramSignature = '';
  private readonly _paramValues = new Map<string, string>();
  private _runs: IRunSummary[] = [];
  private _runsError: string | null = null;
  private readonly _details = new Map<string, IRun>();
  private readonly _expanded = new Set<string>();
  private readonly _autoExpanded = new Set<string>();
  private readonly _userExpanded = new Set<string>();
}
