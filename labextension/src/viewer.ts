/**
 * A read-only view of an executed stage notebook.
 *
 * The run store is a hidden folder (`.nbops/`) that the lab's Contents API
 * will not open, and an executed notebook is a record, not a document to edit.
 * So the panel gets its JSON from `/nbops/runs/<id>/stages/<stage>/notebook`
 * and shows it in a `StaticNotebook` (rendering only: no kernel, no
 * editing, nothing to save). "Save a copy" writes it beside the source notebook
 * when the user asks, where it becomes an ordinary notebook.
 */
import { MainAreaWidget, showErrorMessage, ToolbarButton } from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { PathExt } from '@jupyterlab/coreutils';
import * as nbformat from '@jupyterlab/nbformat';
import { NotebookModel, NotebookPanel, StaticNotebook } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Contents } from '@jupyterlab/services';
import { fileIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

export interface IExecutedNotebook {
  runId: string;
  stage: string;
  /** Root-relative path of the source notebook. */
  notebookPath: string;
  content: nbformat.INotebookContent;
}

export interface IViewerServices {
  rendermime: IRenderMimeRegistry;
  editorServices: IEditorServices;
  contents: Contents.IManager;
  /** Open a saved copy as an ordinary document. */
  openPath: (path: string) => void;
}

export function executedNotebookId(runId: string, stage: string): string {
  return `nbops-executed-${runId}-${stage}`;
}

/** The path "Save a copy" writes: beside the source notebook, never in the hidden store. */
export function copyPath(notebookPath: string, runId: string, stage: string): string {
  const dir = PathExt.dirname(notebookPath);
  const stem = PathExt.basename(notebookPath, '.ipynb');
  return PathExt.join(dir, `${stem}.${stage}.${runId}.ipynb`);
}

/** A main-area widget showing the executed notebook, read-only. */
export function createExecutedNotebookView(nb: IExecutedNotebook, services: IViewerServices): MainAreaWidget {
  const model = new NotebookModel();
  model.fromJSON(nb.content);
  model.readOnly = true;
  const defaults = StaticNotebook.defaultEditorConfig;
  const content = new StaticNotebook({
    rendermime: services.rendermime,
    contentFactory: new NotebookPanel.ContentFactory({
      editorFactory: services.editorServices.factoryService.newInlineEditor
    }),
    mimeTypeService: services.editorServices.mimeTypeService,
    editorConfig: {
      code: { ...defaults.code, readOnly: true },
      markdown: { ...defaults.markdown, readOnly: true },
      raw: { ...defaults.raw, readOnly: true }
    },
    notebookConfig: { ...StaticNotebook.defaultNotebookConfig, windowingMode: 'none' }
  });
  content.model = model;
  for (const cell of content.widgets) {
    cell.readOnly = true;
  }
  content.addClass('nbops-ExecutedNotebook');

  const widget = new MainAreaWidget({ content });
  widget.id = executedNotebookId(nb.runId, nb.stage);
  widget.title.label = `${nb.stage} · ${nb.runId}`;
  widget.title.caption = `Executed stage "${nb.stage}" of run ${nb.runId} (${nb.notebookPath}), read-only`;
  widget.title.icon = fileIcon;
  widget.title.closable = true;
  widget.addClass('nbops-ExecutedNotebookView');

  const badge = document.createElement('span');
  badge.className = 'nbops-ReadOnlyBadge';
  badge.textContent = 'read-only · executed stage notebook';
  const saveCopy = new ToolbarButton({
    label: 'Save a copy',
    tooltip: 'Write this executed notebook beside the source notebook and open it',
    onClick: async () => {
      const path = copyPath(nb.notebookPath, nb.runId, nb.stage);
      try {
        await services.contents.save(path, { type: 'notebook', format: 'json', content: nb.content });
        services.openPath(path);
      } catch (error) {
        await showErrorMessage('Could not save a copy', String(error));
      }
    }
  });
  widget.toolbar.addItem('nbops-readonly', new Widget({ node: badge }));
  widget.toolbar.addItem('nbops-save-copy', saveCopy);
  return widget;
}
