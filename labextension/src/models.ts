/**
 * The "Models" section: the models registered in the active notebook's store;
 * one opened shows its aliases, versions and history (modelview.ts), a promote
 * form with optional gates, and a roll-back button per alias. "Register as
 * model" in the run view lands here too (`register`). The server decides
 * everything (gates included); a refusal is shown with its message.
 */
import { InputDialog } from '@jupyterlab/apputils';

import { h } from './dom';
import { errorText } from './errortext';
import { PipelineModel } from './model';
import { gateText, modelNameFor, moveText, parseGates } from './modelformat';
import { aliasChip, renderModelDetail } from './modelview';
import { getModel, getModelHistory, listModels, promoteModel, registerModel, rollbackModel } from './request';
import { StoreSection } from './storesection';
import { IAliasEvent, IModelDetail, IModelSummary } from './tokens';

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** An opened model as last read. */
interface IModelState {
  detail: IModelDetail;
  history: IAliasEvent[];
}

/** What the promote form of one model holds (kept across re-renders). */
interface IPromoteForm {
  version: string;
  alias: string;
  require: string;
  betterThan: string;
  message: string;
}

export class ModelsSection extends StoreSection {
  constructor(model: PipelineModel) {
    super(model, 'Models');
    this._list = h('div', { className: 'nbops-Models' });
    this.body.append(this.notice, this._list);
    this.render();
  }

  protected reset(): void {
    this._models = [];
    this._error = null;
    this._open.clear();
    this._details.clear();
    this._forms.clear();
    this.setNotice('', false);
  }

  /** Read the models again, and the details of the opened ones. */
  async refresh(): Promise<void> {
    const nb = this.model.notebook;
    if (!nb) {
      return;
    }
    const path = nb.context.localPath;
    try {
      const { models } = await listModels(path);
      const names = new Set(models.map(m => m.name));
      const open = [...this._open].filter(n => names.has(n));
      const loaded = await Promise.all(open.map(n => this._load(n, path)));
      if (nb !== this.model.notebook) {
        return;
      }
      this._models = models;
      this._error = null;
      open.forEach((n, i) => this._details.set(n, loaded[i]));
    } catch (error) {
      this._error = errorText(error);
    }
    if (nb === this.model.notebook) {
      this.draw();
    }
  }

  /** Register output `variable` of `stage` in run `runId` as a model version (asks for the name). */
  async register(runId: string, stage: string, variable: string): Promise<void> {
    const nb = this.model.notebook;
    if (!nb) {
      return;
    }
    const answer = await InputDialog.getText({
      title: 'Register as model',
      label: `Model name for ${stage}.${variable} of run ${runId} (a new version when the model exists)`,
      text: this._defaultName(stage, variable, nb.context.localPath),
      okLabel: 'Register'
    });
    const name = answer.button.accept ? (answer.value ?? '').trim() : '';
    if (!name) {
      return;
    }
    this.node.scrollIntoView({ block: 'start' });
    if (!MODEL_NAME.test(name)) {
      this.setNotice(`"${name}" is not a model name: use letters, digits, '_', '-' and '.'`, true);
      return;
    }
    try {
      const v = await registerModel(nb.context.localPath, runId, stage, variable, name);
      this.setNotice(`Registered ${v.name} v${v.version} from run ${runId} (${stage}.${variable}).`, false);
      this._open.add(v.name);
      this._forms.delete(v.name); // the form offers the new version
      await this.refresh();
    } catch (error) {
      this.setNotice(`Could not register ${stage}.${variable}: ${errorText(error)}`, true);
    }
  }

  private _defaultName(stage: string, variable: string, path: string): string {
    for (const [name, { detail }] of this._details) {
      if (detail.versions.some(v => v.stage === stage && v.var === variable)) {
        return name;
      }
    }
    return this._models.length === 1 ? this._models[0].name : modelNameFor(path);
  }

  private async _load(name: string, path: string): Promise<IModelState> {
    const [detail, history] = await Promise.all([getModel(name, path), getModelHistory(name, path)]);
    return { detail, history };
  }

  private async _toggle(name: string): Promise<void> {
    if (this._open.has(name)) {
      this._open.delete(name);
      this.draw();
      return;
    }
    this._open.add(name);
    this.draw();
    const nb = this.model.notebook;
    if (!nb) {
      return;
    }
    try {
      const loaded = await this._load(name, nb.context.localPath);
      if (nb !== this.model.notebook) {
        return;
      }
      this._details.set(name, loaded);
    } catch (error) {
      this.setNotice(errorText(error), true);
    }
    this.draw();
  }

  private async _promote(name: string): Promise<void> {
    const nb = this.model.notebook;
    const form = this._form(name);
    if (!nb) {
      return;
    }
    const version = Number(form.version);
    const alias = form.alias.trim();
    const require = parseGates(form.require);
    const betterThan = form.betterThan.trim();
    await this.act(
      async () => {
        const move = await promoteModel(name, nb.context.localPath, {
          version,
          alias,
          require,
          better_than: betterThan || undefined,
          message: form.message.trim() || undefined
        });
        const gates = move.gates.length ? `; gates: ${move.gates.map(gateText).join('; ')}` : '';
        form.message = '';
        return `Promoted ${name} v${move.to} to ${alias} (${moveText(move.from, move.to)})${gates}.`;
      },
      `Could not promote ${name} v${version} to ${alias || '?'}`
    );
  }

  private async _rollback(name: string, alias: string): Promise<void> {
    const nb = this.model.notebook;
    if (!nb) {
      return;
    }
    const answer = await InputDialog.getText({
      title: `Roll back ${name}@${alias}`,
      label: `${alias} goes back to the version it held before. Why? (kept in the history; optional)`,
      okLabel: 'Roll back'
    });
    if (!answer.button.accept) {
      return;
    }
    await this.act(async () => {
      const move = await rollbackModel(name, nb.context.localPath, alias, (answer.value ?? '').trim() || undefined);
      return `Rolled ${name}@${alias} back (${moveText(move.from, move.to)}).`;
    }, `Could not roll back ${name}@${alias}`);
  }

  private _form(name: string): IPromoteForm {
    let form = this._forms.get(name);
    if (!form) {
      const latest = this._models.find(m => m.name === name)?.latest ?? 1;
      form = { version: String(latest), alias: 'production', require: '', betterThan: '', message: '' };
      this._forms.set(name, form);
    }
    return form;
  }

  protected draw(): void {
    if (this._error) {
      this._list.replaceChildren(h('div', { className: 'nbops-Message nbops-mod-error', role: 'alert' }, this._error));
      return;
    }
    if (!this._models.length) {
      const empty = this.model.notebook
        ? 'No models yet: "register" a stage output in a run below, or nbops.log_model.'
        : '';
      this._list.replaceChildren(h('div', { className: 'nbops-Empty' }, empty));
      return;
    }
    this._list.replaceChildren(...this._models.map(m => this._item(m)));
  }

  private _item(m: IModelSummary): HTMLElement {
    const open = this._open.has(m.name);
    const loaded = this._details.get(m.name);
    return h(
      'div',
      { className: 'nbops-Model', 'data-model': m.name },
      h(
        'button',
        {
          className: 'nbops-RunHeader',
          'aria-expanded': open ? 'true' : 'false',
          onclick: () => void this._toggle(m.name)
        },
        h('b', {}, m.name),
        h('span', { className: 'nbops-Dim' }, ` v${m.latest ?? '–'} `),
        ...Object.entries(m.aliases).map(([a, v]) => aliasChip(a, v))
      ),
      open && loaded ? this._detail(m.name, loaded.detail, loaded.history) : null
    );
  }

  private _detail(name: string, detail: IModelDetail, history: IAliasEvent[]): HTMLElement {
    const form = this._form(name);
    const field = (label: string, key: keyof IPromoteForm, placeholder: string, title: string) =>
      h(
        'div',
        { className: 'nbops-Row' },
        h('label', { title }, label),
        h('input', {
          className: 'jp-mod-styled nbops-Input',
          type: 'text',
          'aria-label': label,
          placeholder,
          title,
          value: form[key],
          oninput: (e: Event) => (form[key] = (e.target as HTMLInputElement).value)
        })
      );
    const select = h(
      'select',
      {
        className: 'nbops-Select',
        'aria-label': 'Version',
        onchange: (e: Event) => (form.version = (e.target as HTMLSelectElement).value)
      },
      ...[...detail.versions].reverse().map(v => h('option', { value: String(v.version) }, `v${v.version}`))
    );
    select.value = form.version;
    const promoteForm = h(
      'form',
      {
        className: 'nbops-PromoteForm',
        'aria-label': `Promote ${name}`,
        onsubmit: (e: Event) => {
          e.preventDefault();
          void this._promote(name);
        }
      },
      h('div', { className: 'nbops-Subtitle' }, 'Promote'),
      h('div', { className: 'nbops-Row' }, h('label', {}, 'Version'), select),
      field('Alias', 'alias', 'production', 'The alias to move, e.g. production or staging'),
      field('Require', 'require', 'accuracy>=0.8, f1>0.7', 'Metric conditions the version must meet (optional)'),
      field(
        'Better than',
        'betterThan',
        'production',
        'An alias whose version it must beat on their shared metrics (optional)'
      ),
      field('Why', 'message', 'what changed', 'Kept in the history (optional)'),
      h(
        'div',
        { className: 'nbops-Row' },
        h('button', { className: 'jp-mod-styled jp-mod-accept', type: 'submit', disabled: this.busy }, 'Promote')
      )
    );
    return renderModelDetail(detail, history, promoteForm, {
      rollback: alias => void this._rollback(name, alias),
      choose: version => {
        form.version = String(version);
        select.value = form.version;
        promoteForm.querySelector<HTMLInputElement>('input[aria-label="Alias"]')?.focus();
      }
    });
  }

  private readonly _list: HTMLElement;
  private _models: IModelSummary[] = [];
  private _error: string | null = null;
  private readonly _open = new Set<string>();
  private readonly _details = new Map<string, IModelState>();
  private readonly _forms = new Map<string, IPromoteForm>();
}
