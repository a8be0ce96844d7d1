/**
 * nbops for JupyterLab: the "Pipeline" side panel and its commands.
 * Plugin objects only; the panel, requests and tag logic live in their modules.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, InputDialog, WidgetTracker } from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import * as nbformat from '@jupyterlab/nbformat';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { LabIcon } from '@jupyterlab/ui-components';
import { MainAreaWidget } from '@jupyterlab/apputils';

import { PipelinePanel } from './panel';
import { getStageNotebook } from './request';
import { stageNameProblem } from './tags';
import { CommandIDs, IPipelinePanel } from './tokens';
import { createExecutedNotebookView, executedNotebookId } from './viewer';

const pipelineIcon = new LabIcon({
  name: 'nbops:pipeline',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<rect x="5" y="1" width="6" height="3.5" rx="1"/><rect x="1" y="11.5" width="6" height="3.5" rx="1"/>' +
    '<rect x="9" y="11.5" width="6" height="3.5" rx="1"/>' +
    '<path d="M7.4 4.5h1.2v2.9h3.6v4.1H11V8.6H5v2.9H3.8V7.4h3.6z"/></g></svg>'
});

const pipelinePlugin: JupyterFrontEndPlugin<IPipelinePanel> = {
  id: 'nbops:pipeline',
  description: 'The Pipeline side panel: stages, DAG and runs of the active notebook.',
  autoStart: true,
  provides: IPipelinePanel,
  requires: [INotebookTracker, IRenderMimeRegistry, IEditorServices],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    rendermime: IRenderMimeRegistry,
    editorServices: IEditorServices,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ): IPipelinePanel => {
    const executed = new WidgetTracker<MainAreaWidget>({ namespace: 'nbops-executed' });

    const openExecuted = async (runId: string, stage: string, notebookPath: string) => {
      const id = executedNotebookId(runId, stage);
      const existing = executed.find(w => w.id === id);
      if (existing) {
        app.shell.activateById(id);
        return;
      }
      const content = (await getStageNotebook(runId, stage, notebookPath)) as unknown as nbformat.INotebookContent;
      const view = createExecutedNotebookView(
        { runId, stage, notebookPath, content },
        {
          rendermime,
          editorServices,
          contents: app.serviceManager.contents,
          openPath: path => void app.commands.execute('docmanager:open', { path })
        }
      );
      void executed.add(view);
      app.shell.add(view, 'main', { mode: 'split-right' });
      app.shell.activateById(view.id);
    };

    const panel = new PipelinePanel({ tracker: notebooks, openExecuted });
    panel.title.icon = pipelineIcon;
    panel.title.label = 'Pipeline';
    app.shell.add(panel, 'right', { rank: 650 });
    restorer?.add(panel, 'nbops-pipeline');

    const hasNotebook = () => notebooks.currentWidget !== null;
    app.commands.addCommand(CommandIDs.openPanel, {
      label: 'nbops: Show the Pipeline panel',
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.assignStage, {
      label: 'nbops: Assign the selected cells to a stage…',
      isEnabled: hasNotebook,
      execute: async args => {
        let name = typeof args.stage === 'string' ? args.stage : null;
        if (name === null) {
          const answer = await InputDialog.getItem({
            title: 'Assign to stage',
            label: 'Stage of the selected cells (pick one or type a new name)',
            items: panel.stageNames,
            editable: true,
            placeholder: 'e.g. train'
          });
          if (!answer.button.accept || !answer.value) {
            return;
          }
          name = answer.value.trim();
        }
        const problem = stageNameProblem(name);
        if (problem) {
          throw new Error(problem);
        }
        panel.assignStage(name);
      }
    });
    app.commands.addCommand(CommandIDs.runPipeline, {
      label: 'nbops: Run the pipeline of this notebook',
      isEnabled: hasNotebook,
      execute: async () => {
        app.shell.activateById(panel.id);
        await panel.runPipeline();
      }
    });
    app.commands.addCommand(CommandIDs.showRuns, {
      label: 'nbops: Show the runs of this notebook',
      isEnabled: hasNotebook,
      execute: () => {
        app.shell.activateById(panel.id);
        panel.showRuns();
      }
    });
    if (palette) {
      for (const command of [
        CommandIDs.assignStage,
        CommandIDs.runPipeline,
        CommandIDs.showRuns,
        CommandIDs.openPanel
      ]) {
        palette.addItem({ command, category: 'nbops' });
      }
    }
    return panel;
  }
};

export default [pipelinePlugin];
export { IPipelinePanel };
