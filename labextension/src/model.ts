/**
 * What the Pipeline panel knows of the active notebook: its stage graph (of
 * the editor's content), the plan of its saved content (what a run would do
 * now) and its runs. It follows the notebook tracker, asks the server (never
 * computes a graph or a plan itself) and signals each change; the sections
 * only render.
 */
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISignal, Signal } from '@lumino/signaling';

import { errorText } from './errortext';
import { fetchGraph, fetchPlan, getRun, listRuns, startRun } from './request';
import { RUNNING } from './status';
import { IGraph, IPipelineModel, IPlan, IRun, IRunSummary, IStoreInfo, PipelineChange } from './tokens';
import { NotebookWatcher } from './watcher';

const GRAPH_DEBOUNCE_MS = 500;
const PLAN_DEBOUNCE_MS = 300;
// Data files and local modules change outside the editor: the plan of the active
// notebook is checked again this often (the server remembers file hashes by stat).
const PLAN_RECHECK_MS = 10_000;
const POLL_MS = 1000;

/** Where the graph request stands; the panel shows it as `data-graph-state`. */
export type GraphState = 'idle' | 'pending' | 'loading' | 'ready' | 'error';

export class PipelineModel implements IPipelineModel {
  constructor(private readonly _tracker: INotebookTracker) {
    _tracker.currentChanged.connect(this._onCurrentChanged, this);
    this._onCurrentChanged();
  }

  get changed(): ISignal<IPipelineModel, PipelineChange> {
    return this._changed;
  }
  get notebook(): NotebookPanel | null {
    return this._nb;
  }
  get graph(): IGraph | null {
    return this._graph;
  }
  get graphError(): string | null {
    return this._graphError;
  }
  get graphState(): GraphState {
    return this._graphState;
  }
  get plan(): IPlan | null {
    return this._plan;
  }
  get runs(): IRunSummary[] {
    return this._runs;
  }
  get runsError(): string | null {
    return this._runsError;
  }
  get store(): IStoreInfo | null {
    return this._store;
  }
  /** Names of the stages in the current graph, in order. */
  get stageNames(): string[] {
    return this._graph?.stages.map(s => s.name) ?? [];
  }
  /** The newest run with its stages, once loaded. */
  get lastRun(): IRun | null {
    return this._runs.length ? (this._details.get(this._runs[0].id) ?? null) : null;
  }

  run(id: string): IRun | undefined {
    return this._details.get(id);
  }

  /** Runs whose stages the runs list shows: their details are kept fresh. */
  readonly expanded = new Set<string>();

  dispose(): void {
    this._tracker.currentChanged.disconnect(this._onCurrentChanged, this);
    this._watcher?.dispose();
    window.clearTimeout(this._graphTimer);
    window.clearTimeout(this._planTimer);
    window.clearTimeout(this._pollTimer);
    Signal.clearData(this);
  }

  /** Save the notebook if needed and start a run; resolves to the run id. */
  async startRun(params: Record<string, string>, executor: string): Promise<string> {
    const nb = this._nb;
    if (!nb) {
      throw new Error('open a notebook first');
    }
    if (nb.context.model.dirty) {
      await nb.context.save();
    }
    const id = await startRun(nb.context.localPath, params, executor);
    await this.refreshRuns();
    return id;
  }

  async refreshRuns(): Promise<void> {
    const nb = this._nb;
    window.clearTimeout(this._pollTimer);
    if (!nb) {
      return;
    }
    const path = nb.context.localPath;
    const wasRunning = this._isRunning();
    const newest = this._runs[0]?.id;
    try {
      const { store, runs } = await listRuns(path);
      if (nb !== this._nb) {
        return;
      }
      this._store = store;
      this._runs = runs;
      this._runsError = null;
      // The newest run's stages mark the cell bands: always loaded.
      const wanted = runs.filter((r, i) => {
        const known = this._details.get(r.id);
        return (
          (i === 0 || this.expanded.has(r.id)) && (!known || known.status === RUNNING || known.status !== r.status)
        );
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
    this._changed.emit('runs');
    const running = this._isRunning();
    if (running && !this._runsError) {
      this._pollTimer = window.setTimeout(() => void this.refreshRuns(), POLL_MS);
    }
    if ((wasRunning || newest !== this._runs[0]?.id) && !running) {
      this._schedulePlan(); // a run that ended changed what is cached
    }
  }

  private _isRunning(): boolean {
    return this._runs.some(r => r.status === RUNNING) || [...this._details.values()].some(d => d.status === RUNNING);
  }

  private _onCurrentChanged(): void {
    const nb = this._tracker.currentWidget;
    if (nb === this._nb) {
      return;
    }
    this._watcher?.dispose();
    this._watcher = null;
    this._nb?.context.saveState.disconnect(this._onSaveState, this);
    this._nb = nb;
    this._graph = null;
    this._graphError = null;
    this._graphState = 'idle';
    this._plan = null;
    this._runs = [];
    this._runsError = null;
    this._store = null;
    this._details.clear();
    this.expanded.clear();
    window.clearTimeout(this._pollTimer);
    window.clearTimeout(this._planTimer);
    this._changed.emit('notebook');
    if (!nb) {
      return;
    }
    nb.context.saveState.connect(this._onSaveState, this);
    void nb.context.ready.then(() => {
      if (nb !== this._nb || nb.isDisposed || !nb.model) {
        return;
      }
      this._watcher = new NotebookWatcher(
        nb.model,
        () => this._scheduleGraph(),
        cell => {
          if (cell === nb.content.activeCell?.model) {
            this._changed.emit('cell');
          }
        }
      );
      void this._refreshGraph();
      void this._refreshPlan();
      void this.refreshRuns();
    });
  }

  private _onSaveState(_: unknown, state: string): void {
    // The plan reads the notebook on disk: an edit counts once it is saved.
    if (state === 'completed') {
      this._schedulePlan();
    }
  }

  private _setGraphState(state: GraphState): void {
    this._graphState = state;
    this._changed.emit('graph');
  }

  private _scheduleGraph(): void {
    window.clearTimeout(this._graphTimer);
    this._setGraphState('pending');
    this._graphTimer = window.setTimeout(() => void this._refreshGraph(), GRAPH_DEBOUNCE_MS);
  }

  private async _refreshGraph(): Promise<void> {
    const nb = this._nb;
    if (!nb || !nb.model) {
      return;
    }
    const seq = ++this._graphSeq;
    this._setGraphState('loading');
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
    this._setGraphState(this._graphError ? 'error' : 'ready');
  }

  private _schedulePlan(): void {
    window.clearTimeout(this._planTimer);
    this._planTimer = window.setTimeout(() => void this._refreshPlan(), PLAN_DEBOUNCE_MS);
  }

  private async _refreshPlan(): Promise<void> {
    const nb = this._nb;
    if (!nb) {
      return;
    }
    const seq = ++this._planSeq;
    let plan: IPlan | null;
    try {
      plan = await fetchPlan(nb.context.localPath);
    } catch {
      // A notebook the graph shows errors for has no plan: the errors say why.
      plan = null;
    }
    if (seq !== this._planSeq || nb !== this._nb) {
      return;
    }
    this._plan = plan;
    this._changed.emit('plan');
    this._recheckPlanLater();
  }

  private _recheckPlanLater(): void {
    window.clearTimeout(this._planTimer);
    this._planTimer = window.setTimeout(() => {
      if (document.visibilityState === 'visible') {
        void this._refreshPlan();
      } else {
        this._recheckPlanLater(); // a hidden tab asks nothing of the server
      }
    }, PLAN_RECHECK_MS);
  }

  private readonly _changed = new Signal<IPipelineModel, PipelineChange>(this);
  private _nb: NotebookPanel | null = null;
  private _watcher: NotebookWatcher | null = null;
  private _graph: IGraph | null = null;
  private _graphError: string | null = null;
  private _graphState: GraphState = 'idle';
  private _graphSeq = 0;
  private _graphTimer = 0;
  private _plan: IPlan | null = null;
  private _planSeq = 0;
  private _planTimer = 0;
  private _pollTimer = 0;
  private _runs: IRunSummary[] = [];
  private _runsError: string | null = null;
  private _store: IStoreInfo | null = null;
  private readonly _details = new Map<string, IRun>();
}
