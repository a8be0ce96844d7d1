/** The "Stages" section: the DAG, one line per stage, and the graph's errors and warnings. */
import { stageColors } from './colors';
import { renderDag } from './dag';
import { h } from './dom';
import { reasonLabel } from './marks';
import { PipelineModel } from './model';
import { IStage } from './tokens';
import { gotoCell, issueLine, PipelineSection } from './section';

function resourceText(s: IStage): string {
  const res = s.resources;
  return [
    res.gpus ? `gpus ${res.gpus}` : '',
    res.cpus ? `cpus ${res.cpus}` : '',
    res.memory ? `memory ${res.memory}` : '',
    res.timeout ? `timeout ${res.timeout}s` : '',
    res.retries ? `retries ${res.retries}` : '',
    s.cache ? '' : 'cache off'
  ]
    .filter(Boolean)
    .join(' · ');
}

export class StagesSection extends PipelineSection {
  constructor(model: PipelineModel) {
    super(model, 'Stages', ['graph', 'plan', 'runs']);
    this._dag = h('div', { className: 'nbops-DagBox' });
    this._list = h('ul', { className: 'nbops-StageList' });
    this._issues = h('div', { className: 'nbops-Issues' });
    this.body.append(this._dag, this._list, this._issues);
    this.render();
  }

  render(): void {
    const g = this.model.graph;
    const nb = this.model.notebook;
    if (!g) {
      this._dag.replaceChildren(h('div', { className: 'nbops-Empty' }, nb ? 'Reading the stages…' : ''));
      this._list.replaceChildren();
      this._issues.replaceChildren();
      return;
    }
    const colors = stageColors(this.model.stageNames);
    this._dag.replaceChildren(
      g.stages.length
        ? renderDag(g, colors)
        : h(
            'div',
            { className: 'nbops-Empty' },
            'No stages yet: tag a code cell stage:NAME, or pick a stage for the active cell above.'
          )
    );
    const planned = new Map((this.model.plan?.stages ?? []).map(s => [s.name, s]));
    const hasRun = this.model.runs.length > 0;
    this._list.replaceChildren(
      ...g.stages.map(s => {
        const extras = resourceText(s);
        const plan = planned.get(s.name);
        const stale = hasRun && plan?.action === 'run';
        return h(
          'li',
          { className: 'nbops-Stage', 'data-stage': s.name },
          h('span', { className: 'nbops-Swatch', style: `background: ${colors.get(s.name)}` }),
          h(
            'button',
            {
              className: 'nbops-LinkButton nbops-StageName',
              title: `Go to the first cell of ${s.name}`,
              onclick: () => gotoCell(nb, s.cells[0] ?? -1)
            },
            s.name
          ),
          h('span', { className: 'nbops-Dim' }, ` cells ${s.cells.join(', ')}`),
          stale && plan
            ? h(
                'span',
                { className: 'nbops-Stale', 'data-reason': plan.reason.kind, title: plan.reason.detail },
                `stale · ${reasonLabel(plan.reason)}`
              )
            : null,
          s.outputs.length ? h('div', { className: 'nbops-Dim nbops-Indent' }, `→ ${s.outputs.join(', ')}`) : null,
          extras ? h('div', { className: 'nbops-Dim nbops-Indent' }, extras) : null
        );
      })
    );
    this._issues.replaceChildren(...[...g.errors, ...g.warnings].map(i => issueLine(i, nb)));
  }

  private readonly _dag: HTMLElement;
  private readonly _list: HTMLElement;
  private readonly _issues: HTMLElement;
}
