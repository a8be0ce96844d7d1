/**
 * What the panel's sections share: a titled `<section>` widget that renders
 * from the pipeline model, and the small views more than one section shows.
 */
import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { h } from './dom';
import { PipelineModel } from './model';
import { IIssue, PipelineChange } from './tokens';

/** A titled section of the panel; `render` runs on the model changes it names. */
export abstract class PipelineSection extends Widget {
  constructor(
    protected readonly model: PipelineModel,
    label: string,
    private readonly _on: readonly PipelineChange[]
  ) {
    super({ node: document.createElement('section') });
    this.addClass('nbops-Section');
    this.node.setAttribute('aria-label', label);
    this.body = h('div', { className: 'nbops-SectionBody' });
    this.node.append(h('h3', { className: 'nbops-SectionTitle' }, label), this.body);
    model.changed.connect(this._onChange, this);
  }

  dispose(): void {
    this.model.changed.disconnect(this._onChange, this);
    super.dispose();
  }

  /** Show what the model holds now. */
  abstract render(): void;

  protected readonly body: HTMLElement;

  private _onChange(_: unknown, change: PipelineChange): void {
    if (change === 'notebook' || this._on.includes(change)) {
      this.render();
    }
  }
}

/** Make cell `index` of `nb` the active one and scroll to it. */
export function gotoCell(nb: NotebookPanel | null, index: number | null | undefined): void {
  if (!nb || index === null || index === undefined || index < 0 || index >= nb.content.widgets.length) {
    return;
  }
  nb.content.activeCellIndex = index;
  void nb.content.scrollToItem(index);
}

/** One graph error or warning; with `nb`, a button that goes to its cell. */
export function issueLine(issue: IIssue, nb: NotebookPanel | null = null): HTMLElement {
  const goto =
    nb && issue.cell !== null
      ? h(
          'button',
          { className: 'nbops-LinkButton', title: 'Go to the cell', onclick: () => gotoCell(nb, issue.cell) },
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
