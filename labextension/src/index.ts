import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbops:pipeline',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => { console.log('nbops'); }
};
export default plugin;
