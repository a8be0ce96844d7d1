/**
 * The "Cell" section: the active cell's stage, role, upstream stages and
 * resources, with controls to change them. Tag edits go through the cell
 * model's metadata API, so they are undoable, saved with the notebook and
 * shared in collaborative sessions.
 */
import { Cell } from '@jupyterlab/cells';
import { INotebookTracker } from '@jupyterlab/notebook';

import { stageColors } from './colors';
import { h } from './dom';
import { errorText } from './errortext';
import { PipelineModel } from './model';
import {
  CellRole,
  readTags,
  resourceProblem,
  ResourceKey,
  ROLES,
  setResource,
  setRole,
  setStage,
  stageNameProblem
} from './tags';
import { IIssue } from './tokens';
import { issueLine, PipelineSection } from './section';
import { policyFields } from './tagfields';

const NEW_STAGE = '__nbops_new__';

function cellTags(cell: Cell): string[] {
  const tags = cell.model.getMetadata('tags');
  return Array.isArray(tags) ? tags.filter((t): t is string => typeof t === 'string') : [];
}

export class CellEditorSection extends PipelineSection {
  constructor(model: PipelineModel, tracker: INotebookTracker) {
    super(model, 'Cell', ['graph', 'cell']);
    this.body.classList.add('nbops-CellEditor');
    // Re-render once the user leaves a field it held back for.
    this.body.addEventListener('focusout', () => {
      if (this._dirty) {
        requestAnimationFrame(() => this.render());
      }
    });
    tracker.activeCellChanged.connect(() => this.render(), this);
    this.render();
  }

  /** Put the selected cells (or the active one) in stage `name`. */
  assignStage(name: string | null): void {
    this._editSelected(tags => setStage(tags, name));
  }

  render(): void {
    const focused = document.activeElement as HTMLElement | null;
    if (
      focused &&
      this.body.contains(focused) &&
      focused.tagName === 'INPUT' &&
      focused.getAttribute('type') !== 'checkbox'
    ) {
      this._dirty = true; // never pull a field out from under the user's typing
      return;
    }
    this._dirty = false;
    const focusField = focused && this.body.contains(focused) ? focused.dataset.field : undefined;
    this.body.replaceChildren(...this._content());
    if (focusField) {
      this.body.querySelector<HTMLElement>(`[data-field="${focusField}"]`)?.focus();
    }
  }

  private _content(): Node[] {
    const nb = this.model.notebook;
    const cell = nb?.content.activeCell;
    if (!nb || !cell) {
      return [h('div', { className: 'nbops-Empty' }, nb ? 'Select a cell.' : 'No notebook.')];
    }
    const index = nb.content.activeCellIndex;
    if (cell.model.type !== 'code') {
      return [
        h('div', { className: 'nbops-Empty' }, `Cell ${index} is ${cell.model.type}: stages are made of code cells.`)
      ];
    }
    const tags = readTags(cellTags(cell));
    const info = this.model.graph?.cells[index];
    const stages = this.model.stageNames;
    if (tags.stage && !stages.includes(tags.stage)) {
      stages.push(tags.stage);
    }
    const colors = stageColors(stages);
    // A cell of the implicit stage (an untagged notebook) is in no named stage.
    const inherited = info?.stage && this.model.stageNames.includes(info.stage) ? info.stage : null;
    const currentStage = tags.stage ?? inherited;
    const where =
      tags.role && tags.role !== 'metrics'
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
        currentStage
          ? h('span', { className: 'nbops-Swatch', style: `background: ${colors.get(currentStage)}` })
          : null,
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
            this.render();
            this.body.querySelector<HTMLInputElement>('[data-field="new-stage"]')?.focus();
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
        const problem = stageNameProblem(name);
        if (problem) {
          this._message = problem;
          input.blur();
          this.render();
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

    out.push(
      ...policyFields(
        tags,
        stages.filter(s => s !== currentStage),
        {
          edit: edit => this._editActive(edit),
          setResource: (key, value) => this._setResource(key, value)
        }
      )
    );
    const issues = this._issuesOf(index);
    if (issues.length) {
      out.push(h('div', { className: 'nbops-CellIssues' }, ...issues.map(i => issueLine(i))));
    }
    if (this._message) {
      out.push(h('div', { className: 'nbops-Message nbops-mod-error', role: 'alert' }, this._message));
    }
    return out;
  }

  private _setResource(key: ResourceKey, value: string): void {
    const problem = value.trim() ? resourceProblem(key, value) : null;
    if (problem) {
      this._message = problem;
      this.render();
      return;
    }
    this._editActive(t => setResource(t, key, value));
  }

  private _editActive(edit: (tags: string[]) => string[]): void {
    const cell = this.model.notebook?.content.activeCell;
    this._edit(cell ? [cell] : [], edit);
  }

  private _editSelected(edit: (tags: string[]) => string[]): void {
    const notebook = this.model.notebook?.content;
    if (!notebook) {
      return;
    }
    this._edit(
      notebook.widgets.filter(c => notebook.isSelectedOrActive(c)),
      edit
    );
  }

  private _edit(cells: readonly Cell[], edit: (tags: string[]) => string[]): void {
    this._message = '';
    for (const cell of cells) {
      if (cell.model.type !== 'code') {
        continue;
      }
      const before = cellTags(cell);
      let after: string[];
      try {
        after = edit(before);
      } catch (error) {
        this._message = errorText(error);
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
    this.render();
  }

  private _issuesOf(index: number): IIssue[] {
    const g = this.model.graph;
    return g ? [...g.errors, ...g.warnings].filter(i => i.cell === index) : [];
  }

  private _dirty = false;
  private _showNewStage = false;
  private _message = '';
}
