/**
 * Marks each cell of a notebook with its stage (a coloured band and a label),
 * the stage's mark (stale, or its last status) on the stage's first cell, and
 * the graph's errors and warnings under the cell they name.
 * Only classes, data attributes, one note and one mark element per cell are touched.
 */
import { Notebook } from '@jupyterlab/notebook';

import { IStageMark, STALE } from './marks';
import { statusColour } from './status';
import { IGraph, IIssue } from './tokens';

const STAGED = 'nbops-mod-staged';
const ROLE = 'nbops-mod-role';
const ISSUE = 'nbops-mod-issue';
const NOTE = 'nbops-CellIssue';
const MARK = 'nbops-StageMark';

function clear(node: HTMLElement): void {
  node.classList.remove(STAGED, ROLE, ISSUE);
  delete node.dataset.nbopsStage;
  delete node.dataset.nbopsLabel;
  delete node.dataset.nbopsRole;
  delete node.dataset.nbopsMark;
  node.style.removeProperty('--nbops-stage-color');
  node.style.removeProperty('--nbops-label');
  node.querySelectorAll(`:scope > .${NOTE}, .${MARK}`).forEach(n => n.remove());
}

function markChip(stage: string, mark: IStageMark): HTMLElement {
  const chip = document.createElement('div');
  chip.className = MARK;
  chip.dataset.mark = mark.mark;
  chip.dataset.stage = stage;
  chip.textContent = mark.label;
  chip.title = mark.title;
  if (mark.mark !== STALE) {
    chip.style.background = statusColour(mark.mark);
  }
  return chip;
}

function issueNote(issues: IIssue[]): HTMLElement {
  const note = document.createElement('div');
  note.className = NOTE;
  for (const issue of issues) {
    const line = document.createElement('div');
    line.className = `nbops-CellIssue-${issue.kind}`;
    const msg = document.createElement('span');
    msg.className = 'nbops-CellIssue-message';
    msg.textContent = `nbops ${issue.kind}: ${issue.message}`;
    line.appendChild(msg);
    if (issue.fix) {
      const fix = document.createElement('span');
      fix.className = 'nbops-CellIssue-fix';
      fix.textContent = ` fix: ${issue.fix}`;
      line.appendChild(fix);
    }
    note.appendChild(line);
  }
  return note;
}

/**
 * Decorate the cells of `notebook` from `graph` (`null` removes every mark);
 * `marks` (stage name -> mark) go on each stage's first cell.
 */
export function decorateCells(
  notebook: Notebook,
  graph: IGraph | null,
  colors: Map<string, string>,
  marks: Map<string, IStageMark> = new Map()
): void {
  const issuesByCell = new Map<number, IIssue[]>();
  for (const issue of graph ? [...graph.errors, ...graph.warnings] : []) {
    if (issue.cell !== null && issue.cell !== undefined) {
      issuesByCell.set(issue.cell, [...(issuesByCell.get(issue.cell) ?? []), issue]);
    }
  }
  // Only named stages get a band: an untagged notebook is one implicit stage,
  // and a band on every cell for that says nothing.
  const named = new Set(graph?.stages.filter(s => !s.implicit).map(s => s.name) ?? []);
  const marked = new Set<string>();
  notebook.widgets.forEach((cell, index) => {
    const node = cell.node;
    clear(node);
    const info = graph?.cells[index];
    if (info && cell.model.type === 'code') {
      if (info.stage && named.has(info.stage) && (info.role === 'stage' || info.role === 'metrics')) {
        node.classList.add(STAGED);
        node.dataset.nbopsStage = info.stage;
        node.dataset.nbopsLabel = info.role === 'metrics' ? `${info.stage} · metrics` : info.stage;
        node.style.setProperty('--nbops-stage-color', colors.get(info.stage) ?? 'var(--jp-border-color1)');
        node.style.setProperty('--nbops-label', JSON.stringify(node.dataset.nbopsLabel));
        const mark = marks.get(info.stage);
        if (mark) {
          node.dataset.nbopsMark = mark.mark;
          if (!marked.has(info.stage)) {
            marked.add(info.stage);
            (node.querySelector(':scope > .jp-Cell-inputWrapper') ?? node).appendChild(markChip(info.stage, mark));
          }
        }
      } else if (info.role === 'setup' || info.role === 'parameters' || info.role === 'skip') {
        node.classList.add(ROLE);
        node.dataset.nbopsRole = info.role;
        node.dataset.nbopsLabel = info.role;
        node.style.setProperty('--nbops-label', JSON.stringify(info.role));
      }
    }
    const issues = issuesByCell.get(index);
    if (issues) {
      node.classList.add(ISSUE);
      node.appendChild(issueNote(issues));
    }
  });
}
