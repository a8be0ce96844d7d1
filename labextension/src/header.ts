/** The panel's header: the notebook it follows, its stage and error counts, a graph failure. */
import { Widget } from '@lumino/widgets';

import { h } from './dom';
import { PipelineModel } from './model';
import { PipelineChange } from './tokens';

function count(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export class HeaderView extends Widget {
  constructor(private readonly _model: PipelineModel) {
    super();
    this.addClass('nbops-Header');
    _model.changed.connect(this._onChange, this);
    this.render();
  }

  dispose(): void {
    this._model.changed.disconnect(this._onChange, this);
    super.dispose();
  }

  render(): void {
    const nb = this._model.notebook;
    const g = this._model.graph;
    const summary = g
      ? count(g.stages.length, 'stage') + (g.errors.length ? `, ${count(g.errors.length, 'error')}` : '')
      : '';
    const error = this._model.graphError;
    this.node.replaceChildren(
      h('h2', { className: 'nbops-Title' }, 'Pipeline'),
      nb
        ? h(
            'div',
            { className: 'nbops-NotebookName', title: nb.context.localPath },
            nb.context.localPath,
            summary ? h('span', { className: 'nbops-Summary' }, ` · ${summary}`) : null
          )
        : h('div', { className: 'nbops-Empty' }, 'Open a notebook to see its pipeline.'),
      error ? h('div', { className: 'nbops-Message nbops-mod-error', role: 'alert' }, error) : ''
    );
  }

  private _onChange(_: unknown, change: PipelineChange): void {
    if (change === 'notebook' || change === 'graph') {
      this.render();
    }
  }
}
