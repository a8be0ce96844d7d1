/**
 * The "Schedules" section: the schedules of the active notebook (its trigger in
 * words, paused/broken badges, the next firing), a form to add one, and per
 * schedule, opened: the next five firings, the last runs with what fired them
 * (which file changed, its new hash) and their status (a link opens the run in
 * the Runs section), notification events, and pause / resume / run now / remove.
 * The server (nbops.automate) decides everything; a refusal is shown as it says.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';

import { h } from './dom';
import { errorText } from './errortext';
import { formatTime } from './format';
import { PipelineModel } from './model';
import { statusBadge } from './runview';
import {
  firingTime,
  firingTriggerText,
  IFiring,
  IScheduleDetail,
  IScheduleEvent,
  IScheduleRequest,
  IScheduleSummary,
  scheduleBadges,
  triggerText
} from './scheduleformat';
import { emptyForm, formRequest, IScheduleForm, renderScheduleForm } from './schedulesform';
import { addSchedule, getSchedule, listSchedules, removeSchedule, runNow, setPaused } from './schedulesrequest';
import { StoreSection } from './storesection';

/** Opens run `runId` in the Runs section. */
export type ShowRun = (runId: string) => void;

// A firing in one of these is going on: the section asks again until it ends
// (not "interrupted": that one waits for a scheduler, which may be hours away).
const ACTIVE = ['queued', 'running'];
const POLL_MS = 1500;

function badge(kind: 'broken' | 'paused', title: string): HTMLElement {
  return h('span', { className: `nbops-ScheduleBadge nbops-mod-${kind}`, 'data-badge': kind, title }, kind);
}

function eventLine(e: IScheduleEvent): HTMLElement {
  return h(
    'li',
    { className: 'nbops-ScheduleEvent', 'data-kind': e.kind, 'data-status': e.status },
    h('b', {}, `${e.kind} ${e.status}`),
    e.target ? h('span', { className: 'nbops-Dim' }, ` → ${e.target}`) : null,
    e.message ? h('div', { className: 'nbops-Dim' }, e.message) : null,
    h('div', { className: 'nbops-Dim' }, formatTime(e.at))
  );
}

export class SchedulesSection extends StoreSection {
  constructor(
    model: PipelineModel,
    private readonly _showRun: ShowRun
  ) {
    super(model, 'Schedules');
    this._adder = h('div', { className: 'nbops-ScheduleAdder' });
    this._list = h('div', { className: 'nbops-Schedules' });
    this.body.append(this.notice, this._adder, this._list);
    this.render();
  }

  dispose(): void {
    window.clearTimeout(this._timer);
    super.dispose();
  }

  protected reset(): void {
    window.clearTimeout(this._timer);
    this._schedules = [];
    this._error = null;
    this._open.clear();
    this._details.clear();
    this._form = null;
    this.setNotice('', false);
  }

  /** Read the schedules again, and the details of the opened ones. */
  async refresh(): Promise<void> {
    const nb = this.model.notebook;
    window.clearTimeout(this._timer);
    if (!nb) {
      return;
    }
    const path = nb.context.localPath;
    try {
      const { schedules } = await listSchedules(path);
      const names = new Set(schedules.map(s => s.name));
      const open = [...this._open].filter(n => names.has(n));
      const details = await Promise.all(open.map(n => getSchedule(n, path)));
      if (nb !== this.model.notebook) {
        return;
      }
      this._schedules = schedules;
      this._error = null;
      const wasActive = this._active();
      this._details.clear();
      details.forEach(d => this._details.set(d.schedule.name, d));
      if (wasActive && !this._active()) {
        void this.model.refreshRuns(); // a scheduled run ended: the Runs section shows it
      }
    } catch (error) {
      this._error = errorText(error);
    }
    if (nb === this.model.notebook) {
      this.draw();
      if (this._active()) {
        this._timer = window.setTimeout(() => void this.refresh(), POLL_MS);
      }
    }
  }

  /** Whether an opened schedule has a firing still going (queued, running). */
  private _active(): boolean {
    return [...this._details.values()].some(d => d.firings.some(f => ACTIVE.includes(f.status)));
  }

  protected draw(): void {
    // The form is rebuilt only when what it shows changes: a redraw for a run's
    // progress must not take the focus from a field being typed in.
    const adderKey = `${this._form?.kind ?? 'closed'}|${this.busy}|${!this.model.notebook}`;
    if (adderKey !== this._adderKey) {
      this._adderKey = adderKey;
      this._drawAdder();
    }
    if (this._error) {
      this._list.replaceChildren(h('div', { className: 'nbops-Message nbops-mod-error', role: 'alert' }, this._error));
      return;
    }
    if (!this._schedules.length) {
      const empty = this.model.notebook ? 'No schedules: "Add schedule…", or nbops schedule add NOTEBOOK.' : '';
      this._list.replaceChildren(h('div', { className: 'nbops-Empty' }, empty));
      return;
    }
    this._list.replaceChildren(...this._schedules.map(s => this._item(s)));
  }

  private _drawAdder(): void {
    this._adder.replaceChildren(
      this._form
        ? renderScheduleForm(this._form, {
            busy: this.busy,
            redraw: () => this.draw(),
            submit: () => void this._add(),
            cancel: () => {
              this._form = null;
              this.draw();
            }
          })
        : h(
            'button',
            {
              className: 'jp-mod-styled nbops-AddSchedule',
              disabled: !this.model.notebook,
              onclick: () => {
                this._form = emptyForm();
                this.draw();
              }
            },
            'Add schedule…'
          )
    );
  }

  private async _add(): Promise<void> {
    const nb = this.model.notebook;
    const form = this._form;
    if (!nb || !form || this.busy) {
      return;
    }
    let body: IScheduleRequest;
    try {
      body = formRequest(form);
    } catch (error) {
      this.setNotice(`Parameters: ${errorText(error)}`, true);
      return;
    }
    await this.act(async () => {
      const added = await addSchedule(nb.context.localPath, body);
      const s = added.schedule;
      this._form = null;
      this._open.add(s.name);
      const warnings = added.warnings?.length ? ` Warning: ${added.warnings.join('; ')}` : '';
      return `Added ${s.name}: ${triggerText(s.trigger)}.${warnings}`;
    }, 'Could not add the schedule');
  }

  private async _action(name: string, action: 'pause' | 'resume' | 'run-now'): Promise<void> {
    const nb = this.model.notebook;
    if (!nb) {
      return;
    }
    const path = nb.context.localPath;
    await this.act(
      async () => {
        if (action === 'run-now') {
          const answer = await runNow(name, path);
          this._open.add(name); // its last runs show the firing, polled until it ends
          return answer.message;
        }
        await setPaused(name, action === 'pause', path);
        return action === 'pause' ? `Paused ${name}.` : `Resumed ${name}.`;
      },
      `Could not ${action.replace('-', ' ')} ${name}`
    );
  }

  private async _remove(name: string): Promise<void> {
    const nb = this.model.notebook;
    if (!nb) {
      return;
    }
    const answer = await showDialog({
      title: `Remove schedule ${name}?`,
      body: 'Its firings and events go with it; the runs it made stay.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Remove' })]
    });
    if (!answer.button.accept) {
      return;
    }
    await this.act(async () => {
      await removeSchedule(name, nb.context.localPath);
      this._open.delete(name);
      return `Removed ${name}.`;
    }, `Could not remove ${name}`);
  }

  private async _toggle(name: string): Promise<void> {
    if (this._open.has(name)) {
      this._open.delete(name);
      this.draw();
      return;
    }
    this._open.add(name);
    await this.refresh();
  }

  private _item(s: IScheduleSummary): HTMLElement {
    const open = this._open.has(s.name);
    const detail = this._details.get(s.name);
    return h(
      'div',
      {
        className: 'nbops-Model nbops-Schedule',
        'data-schedule': s.name,
        'data-paused': s.paused ? 'true' : 'false',
        'data-broken': s.broken ? 'true' : 'false'
      },
      h(
        'button',
        {
          className: 'nbops-RunHeader',
          'aria-expanded': open ? 'true' : 'false',
          onclick: () => void this._toggle(s.name)
        },
        h('b', {}, s.name),
        ' ',
        ...scheduleBadges(s).map(b => badge(b, b === 'broken' ? (s.broken ?? '') : 'not firing until resumed')),
        s.last
          ? h('span', { className: 'nbops-ScheduleLast', title: 'its newest firing' }, ' ', statusBadge(s.last.status))
          : null
      ),
      h('div', { className: 'nbops-ScheduleTrigger', title: s.describe ?? '' }, triggerText(s.trigger)),
      s.broken ? h('div', { className: 'nbops-Message nbops-mod-error' }, s.broken) : null,
      s.next.length && !s.paused
        ? h('div', { className: 'nbops-Dim nbops-ScheduleNext', title: s.next[0] }, `next: ${firingTime(s.next[0])}`)
        : null,
      open && detail ? this._detail(detail) : null
    );
  }

  private _detail(detail: IScheduleDetail): HTMLElement {
    const d = detail.schedule;
    const button = (label: string, onclick: () => void, title: string) =>
      h('button', { className: 'jp-mod-styled', disabled: this.busy, title, onclick }, label);
    const params = Object.entries(d.params ?? {});
    return h(
      'div',
      { className: 'nbops-ModelDetail nbops-ScheduleDetail' },
      h(
        'div',
        { className: 'nbops-Row nbops-ScheduleActions' },
        d.paused
          ? button('Resume', () => void this._action(d.name, 'resume'), 'Fire again from the next due time')
          : button('Pause', () => void this._action(d.name, 'pause'), 'Stop firing until resumed'),
        button('Run now', () => void this._action(d.name, 'run-now'), 'Queue a firing now (the scheduler runs it)'),
        button('Remove', () => void this._remove(d.name), 'Delete the schedule (its runs stay)')
      ),
      params.length
        ? h(
            'div',
            { className: 'nbops-Dim' },
            `parameters: ${params.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')}`
          )
        : null,
      d.notify.length
        ? h(
            'div',
            { className: 'nbops-Dim nbops-ScheduleNotify' },
            `notifies ${d.notify.join(', ')} on ${(d.notify_on.length ? d.notify_on : ['failure', 'promotion', 'regression']).join(', ')}`
          )
        : null,
      h('div', { className: 'nbops-Subtitle' }, 'Next firings'),
      d.next.length && !d.paused
        ? h(
            'ol',
            { className: 'nbops-NextFirings', 'aria-label': `Next firings of ${d.name}` },
            ...d.next.map(t => h('li', { className: 'nbops-NextFiring', title: t }, firingTime(t)))
          )
        : h(
            'div',
            { className: 'nbops-Dim' },
            d.paused ? 'none while paused' : `none planned: fires ${triggerText(d.trigger)}`
          ),
      h('div', { className: 'nbops-Subtitle' }, 'Last runs'),
      detail.firings.length
        ? h(
            'ul',
            { className: 'nbops-Firings', 'aria-label': `Last runs of ${d.name}` },
            ...detail.firings.map(f => this._firing(f))
          )
        : h('div', { className: 'nbops-Dim' }, 'not fired yet'),
      detail.events.length ? h('div', { className: 'nbops-Subtitle' }, 'Events') : null,
      detail.events.length
        ? h(
            'ul',
            { className: 'nbops-ScheduleEvents', 'aria-label': `Events of ${d.name}` },
            ...detail.events.map(eventLine)
          )
        : null
    );
  }

  private _firing(f: IFiring): HTMLElement {
    const run = f.run_id;
    return h(
      'li',
      { className: 'nbops-Firing', 'data-key': f.key, 'data-status': f.status, 'data-run-id': run ?? '' },
      statusBadge(f.status),
      ' ',
      run
        ? h(
            'button',
            {
              className: 'nbops-LinkButton',
              title: 'Open this run in the Runs section',
              onclick: () => this._showRun(run)
            },
            run
          )
        : null,
      h('span', { className: 'nbops-Dim nbops-FiringTrigger' }, ` ${firingTriggerText(f)}`),
      f.started_at
        ? h('span', { className: 'nbops-Dim', title: f.started_at }, ` · ${formatTime(f.started_at)}`)
        : null,
      f.attempts > 1 ? h('span', { className: 'nbops-Dim' }, ` · attempt ${f.attempts}`) : null,
      f.reason ? h('div', { className: 'nbops-Dim' }, f.reason) : null
    );
  }

  private readonly _adder: HTMLElement;
  private readonly _list: HTMLElement;
  private _adderKey = '';
  private _timer = 0;
  private _schedules: IScheduleSummary[] = [];
  private _error: string | null = null;
  private _form: IScheduleForm | null = null;
  private readonly _open = new Set<string>();
  private readonly _details = new Map<string, IScheduleDetail>();
}
