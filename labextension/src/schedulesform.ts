/**
 * The "add a schedule" form of the Schedules section: one trigger (cron with a
 * time zone, an interval, files or URLs to watch, or another schedule), optional
 * parameters and notification targets. It only reads what was typed into a
 * request; the server checks everything (a bad cron field, an unknown zone) and
 * its message is shown as it is.
 */
import { h } from './dom';
import { IScheduleRequest, parseList, parseParams } from './scheduleformat';

export type TriggerKind = 'cron' | 'every' | 'on_change' | 'after';

const KINDS: [TriggerKind, string][] = [
  ['every', 'every (interval)'],
  ['cron', 'cron (with time zone)'],
  ['on_change', 'when data changes'],
  ['after', 'after another schedule']
];

export const NOTIFY_EVENTS = ['failure', 'success', 'promotion', 'regression'];

/** What the form holds (kept across re-renders of the section). */
export interface IScheduleForm {
  kind: TriggerKind;
  name: string;
  cron: string;
  tz: string;
  every: string;
  watch: string;
  after: string;
  params: string;
  notify: string;
  notifyOn: string[];
}

function localZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone ?? '';
  } catch {
    return '';
  }
}

export function emptyForm(): IScheduleForm {
  return {
    kind: 'every',
    name: '',
    cron: '0 3 * * *',
    tz: localZone(),
    every: '1h',
    watch: '',
    after: '',
    params: '',
    notify: '',
    notifyOn: []
  };
}

/** The request for what the form holds; throws with a message for parameters that are not name=value. */
export function formRequest(form: IScheduleForm): IScheduleRequest {
  const body: IScheduleRequest = {};
  if (form.name.trim()) {
    body.name = form.name.trim();
  }
  if (form.kind === 'cron') {
    body.cron = form.cron.trim();
    if (form.tz.trim()) {
      body.tz = form.tz.trim();
    }
  } else if (form.kind === 'every') {
    body.every = form.every.trim();
  } else if (form.kind === 'on_change') {
    body.on_change = parseList(form.watch);
  } else {
    body.after = form.after.trim();
  }
  const params = parseParams(form.params);
  if (Object.keys(params).length) {
    body.params = params;
  }
  const notify = parseList(form.notify);
  if (notify.length) {
    body.notify = notify;
  }
  if (form.notifyOn.length) {
    body.notify_on = [...form.notifyOn];
  }
  return body;
}

/**
 * The form element. `redraw` is called when the trigger kind changes (other
 * fields show); `submit` when the user adds the schedule.
 */
export function renderScheduleForm(
  form: IScheduleForm,
  options: { busy: boolean; redraw: () => void; submit: () => void; cancel: () => void }
): HTMLElement {
  const field = (label: string, key: keyof IScheduleForm, placeholder: string, title: string) =>
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
        value: form[key] as string,
        oninput: (e: Event) => ((form[key] as string) = (e.target as HTMLInputElement).value)
      })
    );
  const kind = h(
    'select',
    {
      className: 'nbops-Select',
      'aria-label': 'Trigger',
      onchange: (e: Event) => {
        form.kind = (e.target as HTMLSelectElement).value as TriggerKind;
        options.redraw();
      }
    },
    ...KINDS.map(([value, label]) => h('option', { value }, label))
  );
  kind.value = form.kind;
  const trigger: HTMLElement[] =
    form.kind === 'cron'
      ? [
          field(
            'Cron',
            'cron',
            '0 3 * * *',
            'minute hour day-of-month month day-of-week, e.g. 0 3 * * * (03:00 daily)'
          ),
          field('Time zone', 'tz', 'Europe/Berlin', 'An IANA zone; daylight saving is handled (empty: UTC)')
        ]
      : form.kind === 'every'
        ? [field('Every', 'every', '10m', 'An interval: 30s, 10m, 2h, 1d')]
        : form.kind === 'on_change'
          ? [
              field(
                'Watch',
                'watch',
                'data/*.csv, s3://bucket/x.parquet',
                'Files or globs beside the notebook, or URLs, by content hash; "inputs": the files the notebook reads'
              )
            ]
          : [field('After', 'after', 'nightly', 'Runs when a run of this schedule succeeds')];
  const notifyOn = h(
    'div',
    { className: 'nbops-Row nbops-NotifyOn', role: 'group', 'aria-label': 'Notify on' },
    h('label', { title: 'Empty: failure, promotion and regression' }, 'Notify on'),
    h(
      'div',
      { className: 'nbops-Checks' },
      ...NOTIFY_EVENTS.map(event =>
        h(
          'label',
          { className: 'nbops-Check' },
          h('input', {
            type: 'checkbox',
            'aria-label': `Notify on ${event}`,
            checked: form.notifyOn.includes(event),
            onchange: (e: Event) => {
              const on = (e.target as HTMLInputElement).checked;
              form.notifyOn = on ? [...new Set([...form.notifyOn, event])] : form.notifyOn.filter(x => x !== event);
            }
          }),
          ` ${event}`
        )
      )
    )
  );
  return h(
    'form',
    {
      className: 'nbops-ScheduleForm',
      'aria-label': 'Add a schedule',
      onsubmit: (e: Event) => {
        e.preventDefault();
        options.submit();
      }
    },
    h('div', { className: 'nbops-Subtitle' }, 'Add a schedule'),
    field('Name', 'name', 'default: notebook and trigger', 'Letters a-z, digits, - and _ (optional)'),
    h('div', { className: 'nbops-Row' }, h('label', {}, 'Trigger'), kind),
    ...trigger,
    field('Parameters', 'params', 'n_rows=1000, model=rf', 'name=value pairs; values read as JSON when they are'),
    field(
      'Notify',
      'notify',
      'https://hooks.example.com/x, smtp://host/to@example.com',
      'Webhook URLs or smtp(s):// targets, separated by commas (credentials come from the environment)'
    ),
    notifyOn,
    h(
      'div',
      { className: 'nbops-Row' },
      h('button', { className: 'jp-mod-styled jp-mod-accept', type: 'submit', disabled: options.busy }, 'Add schedule'),
      h('button', { className: 'jp-mod-styled', type: 'button', onclick: () => options.cancel() }, 'Cancel')
    )
  );
}
