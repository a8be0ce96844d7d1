/**
 * The "Pipeline" side panel: a composition of sections over one model of the
 * active notebook (model.ts). Each section is a widget of its own
 * (section.ts and one file per section); other extensions add theirs through `IPipelinePanel.addSection`.
 * The panel also keeps the notebook's cell bands in step: stage colours,
 * "stale" marks from the plan, and each stage's last status.
 */
import { INotebookTracker } from '@jupyterlab/notebook';
import { Panel, Widget } from '@lumino/widgets';

import { decorateCells } from './cellbands';
import { stageColors } from './colors';
import { stageMarks } from './marks';
import { PipelineModel } from './model';
import { CellEditorSection } from './celleditor';
import { FeaturesSection } from './features';
import { HeaderView } from './header';
import { ModelsSection } from './models';
import { RunFormSection } from './runform';
import { OpenExecuted, RunsSection } from './runs';
import { SchedulesSection } from './schedules';
import { StagesSection } from './stages';
import { IPipelinePanel, ISectionOptions, PipelineChange } from './tokens';

export interface IPipelinePanelOptions {
  tracker: INotebookTracker;
  /** Open the executed notebook of `stage` in run `runId` (read-only). */
  openExecuted: OpenExecuted;
}

const RANK = { header: 0, cell: 100, stages: 200, run: 300, runs: 400, models: 500, schedules: 550, features: 600 };

export class PipelinePanel extends Panel implements IPipelinePanel {
  constructor(options: IPipelinePanelOptions) {
    super();
    this.id = 'nbops-pipeline';
    this.addClass('nbops-PipelinePanel');
    this.title.caption = 'Pipeline (nbops)';
    this.model = new PipelineModel(options.tracker);
    this._cell = new CellEditorSection(this.model, options.tracker);
    this._runForm = new RunFormSection(this.model);
    const models = new ModelsSection(this.model);
    this._runs = new RunsSection(
      this.model,
      options.openExecuted,
      (run, stage, variable) => void models.register(run, stage, variable)
    );
    this.addSection(new HeaderView(this.model), { rank: RANK.header });
    this.addSection(this._cell, { rank: RANK.cell });
    this.addSection(new StagesSection(this.model), { rank: RANK.stages });
    this.addSection(this._runForm, { rank: RANK.run });
    this.addSection(this._runs, { rank: RANK.runs });
    this.addSection(models, { rank: RANK.models });
    this.addSection(new SchedulesSection(this.model, id => this.showRun(id)), { rank: RANK.schedules });
    this.addSection(new FeaturesSection(this.model), { rank: RANK.features });
    this.model.changed.connect(this._onChange, this);
    this._onChange(this.model, 'notebook');
  }

  readonly model: PipelineModel;

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.model.dispose();
    super.dispose();
  }

  addSection(widget: Widget, options: ISectionOptions = {}): void {
    const rank = options.rank ?? 1000;
    this._ranks.set(widget, rank);
    widget.disposed.connect(() => this._ranks.delete(widget));
    const at = this.widgets.findIndex(w => (this._ranks.get(w) ?? 1000) > rank);
    this.insertWidget(at < 0 ? this.widgets.length : at, widget);
  }

  /** Names of the stages in the current graph, in order. */
  get stageNames(): string[] {
    return this.model.stageNames;
  }

  /** Put the selected cells (or the active one) in stage `name`. */
  assignStage(name: string | null): void {
    this._cell.assignStage(name);
  }

  /** Save the notebook if needed and start a run with the form's parameters. */
  runPipeline(): Promise<void> {
    return this._runForm.runPipeline();
  }

  /** Bring the runs list into view and refresh it. */
  showRuns(): void {
    this._runs.show();
  }

  /** Open run `id` in the runs list and bring it into view (a schedule's "last runs" link). */
  showRun(id: string): void {
    this.model.expanded.add(id);
    this._runs.show();
  }

  private _onChange(_: unknown, change: PipelineChange): void {
    this.node.dataset.graphState = this.model.graphState;
    if (change === 'notebook' && this._decorated && !this._decorated.isDisposed) {
      decorateCells(this._decorated.content, null, new Map());
    }
    if (change === 'cell') {
      return;
    }
    const nb = this.model.notebook;
    this._decorated = nb;
    if (nb) {
      const marks = stageMarks(this.model.plan, this.model.lastRun);
      decorateCells(nb.content, this.model.graph, stageColors(this.model.stageNames), marks);
    }
  }

  private readonly _cell: CellEditorSection;
  private readonly _runForm: RunFormSection;
  private readonly _runs: RunsSection;
  private readonly _ranks = new Map<Widget, number>();
  private _decorated: PipelinePanel['model']['notebook'] = null;
}
