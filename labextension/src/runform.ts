/** The "Run" section: the parameters form, the executor and the Run button. */
import { h } from './dom';
import { errorText } from './errortext';
import { PipelineModel } from './model';
import { PipelineSection } from './section';

function defaultText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

export class RunFormSection extends PipelineSection {
  constructor(model: PipelineModel) {
    super(model, 'Run', ['graph']);
    this._params = h('div', { className: 'nbops-Params' });
    this._message = h('div', { className: 'nbops-Message', role: 'status' });
    this._executor = h(
      'select',
      { className: 'nbops-Select', 'aria-label': 'Executor' },
      h('option', { value: 'local' }, 'local'),
      h('option', { value: 'ray' }, 'ray')
    );
    this._button = h(
      'button',
      { className: 'jp-mod-styled jp-mod-accept nbops-RunButton', onclick: () => void this.runPipeline() },
      'Run pipeline'
    );
    this.body.append(
      this._params,
      h('div', { className: 'nbops-Row' }, h('label', {}, 'Executor'), this._executor),
      h('div', { className: 'nbops-Row' }, this._button),
      this._message
    );
    this.render();
  }

  /** Save the notebook if needed and start a run with the form's parameters. */
  async runPipeline(): Promise<void> {
    if (!this.model.notebook) {
      this.setMessage('Open a notebook first.', true);
      return;
    }
    this._button.disabled = true;
    try {
      const params: Record<string, string> = {};
      for (const p of this.model.graph?.parameters ?? []) {
        const value = this._values.get(p.name);
        if (value !== undefined && value !== defaultText(p.default)) {
          params[p.name] = value;
        }
      }
      const id = await this.model.startRun(params, this._executor.value);
      this.setMessage(`Started run ${id}.`, false);
    } catch (error) {
      this.setMessage(`Could not start the run: ${errorText(error)}`, true);
    } finally {
      this._updateButton();
    }
  }

  setMessage(text: string, isError: boolean): void {
    this._message.textContent = text;
    this._message.classList.toggle('nbops-mod-error', isError);
  }

  render(): void {
    if (this.model.notebook !== this._nb) {
      this._nb = this.model.notebook;
      this._values.clear();
      this._signature = '';
      this.setMessage('', false);
    }
    this._renderParams();
    this._updateButton();
  }

  private _renderParams(): void {
    const params = this.model.graph?.parameters ?? [];
    const signature = params.map(p => `${p.name}:${p.type}:${defaultText(p.default)}`).join('|');
    if (signature === this._signature && this._params.childElementCount) {
      return; // keep what the user typed
    }
    this._signature = signature;
    if (!params.length) {
      this._params.replaceChildren(h('div', { className: 'nbops-Empty' }, 'No parameters (tag a cell "parameters").'));
      return;
    }
    this._params.replaceChildren(
      h('div', { className: 'nbops-Subtitle' }, 'Parameters'),
      ...params.map(p =>
        h(
          'div',
          { className: 'nbops-Row' },
          h('label', { title: p.type }, p.name, h('span', { className: 'nbops-Dim' }, ` ${p.type}`)),
          h('input', {
            className: 'jp-mod-styled nbops-Input',
            type: 'text',
            'aria-label': `parameter ${p.name}`,
            value: this._values.get(p.name) ?? defaultText(p.default),
            oninput: (e: Event) => this._values.set(p.name, (e.target as HTMLInputElement).value)
          })
        )
      )
    );
  }

  private _updateButton(): void {
    const g = this.model.graph;
    const errors = g?.errors.length ?? 0;
    this._button.disabled = !this.model.notebook || !g || errors > 0 || !g.stages.length;
    this._button.title = errors ? 'Fix the errors in the stage graph first' : 'Save the notebook and run its pipeline';
  }

  private readonly _params: HTMLElement;
  private readonly _message: HTMLElement;
  private readonly _executor: HTMLSelectElement;
  private readonly _button: HTMLButtonElement;
  private _nb: unknown = null;
  private _signature = '';
  private readonly _values = new Map<string, string>();
}
