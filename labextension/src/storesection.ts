/**
 * A section over records of the notebook's store (models, feature tables).
 * It reads them again when the notebook changes, when a run ends (a run may
 * have registered a model or published a table) and on "Refresh"; between
 * reads it only redraws, so what the user typed in a form stays.
 */
import { h } from './dom';
import { errorText } from './errortext';
import { PipelineModel } from './model';
import { PipelineSection } from './section';
import { RUNNING } from './status';

export abstract class StoreSection extends PipelineSection {
  constructor(model: PipelineModel, label: string) {
    super(model, label, ['runs']);
    this.body.append(
      h(
        'button',
        {
          className: 'jp-mod-styled nbops-Refresh',
          title: `Refresh the ${label.toLowerCase()}`,
          onclick: () => void this.refresh()
        },
        'Refresh'
      )
    );
  }

  render(): void {
    const nb = this.model.notebook;
    if (nb !== this._nb) {
      this._nb = nb;
      this._runKey = '';
      this.reset();
      if (nb) {
        void this.refresh();
      }
    }
    const newest = this.model.runs[0];
    const runKey = newest ? `${newest.id}:${newest.status}` : '';
    if (runKey !== this._runKey) {
      const before = this._runKey;
      this._runKey = runKey;
      if (before && newest.status !== RUNNING) {
        void this.refresh();
      }
    }
    this.draw();
  }

  /** Run an action; say what happened (or what failed), then read the records again. */
  protected async act(action: () => Promise<string>, failure: string): Promise<void> {
    if (this.busy) {
      return;
    }
    this.busy = true;
    this.draw();
    try {
      this.setNotice(await action(), false);
    } catch (error) {
      this.setNotice(`${failure}: ${errorText(error)}`, true);
    } finally {
      this.busy = false;
    }
    await this.refresh();
  }

  protected setNotice(text: string, isError: boolean): void {
    this.notice.textContent = text;
    this.notice.hidden = !text;
    this.notice.classList.toggle('nbops-mod-error', isError);
    this.notice.setAttribute('role', isError ? 'alert' : 'status');
  }

  /** What the last action did, or why it failed; a subclass places it. */
  protected readonly notice: HTMLElement = h('div', { className: 'nbops-Message', hidden: true });
  /** An action is under way: buttons are disabled. */
  protected busy = false;

  /** Read the records again (then draw). */
  abstract refresh(): Promise<void>;

  /** Forget what was shown: another notebook (or none) is active. */
  protected abstract reset(): void;

  /** Show what is held now (no requests). */
  protected abstract draw(): void;

  private _nb: unknown = null;
  private _runKey = '';
}
