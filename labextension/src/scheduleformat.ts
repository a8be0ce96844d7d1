/**
 * Schedules as the panel shows them and reads them from its form (pure: no DOM).
 * The shapes mirror what `/nbops/schedules` answers (nbops/server/schedules_routes.py).
 */

/** What starts a schedule (nbops.automate.triggers.make_trigger). */
export interface ITrigger {
  kind: 'cron' | 'every' | 'on_change' | 'after' | string;
  cron?: string;
  tz?: string | null;
  seconds?: number;
  watch?: string[];
  debounce?: number;
  /** `on_change` made from "inputs": the files the notebook reads. */
  from_inputs?: boolean;
  schedule?: string;
}

/** A schedule as `/nbops/schedules` answers it (nbops.automate.schedules.schedule_to_json). */
export interface IScheduleSummary {
  name: string;
  notebook: string;
  trigger: ITrigger;
  /** The server's own one-line description (`cron 0 3 * * * (Europe/Berlin)`). */
  describe?: string;
  params: Record<string, unknown>;
  executor: string;
  /** Notification targets, masked. */
  notify: string[];
  notify_on: string[];
  paused: boolean;
  /** Why it cannot run (its notebook moved, analysis errors); null when it can. */
  broken: string | null;
  status?: 'active' | 'paused' | 'broken';
  /** The next due times (ISO with the schedule's offset): one in a list, five in `show`; none for data and `after` triggers. */
  next: string[];
  /** Its newest firing (in a list). */
  last?: IFiring | null;
}

/** What fired a run: the schedule's firing key and, for a data trigger, the files with their new hashes. */
export interface IFiringTrigger {
  kind?: string;
  schedule?: string;
  key?: string;
  files?: { path: string; hash: string; old?: string | null }[];
  run?: string;
  [key: string]: unknown;
}

/** One firing of a schedule and the run it made (`last runs`). */
export interface IFiring {
  key: string;
  status: string;
  due_at: string | null;
  started_at: string | null;
  ended_at: string | null;
  run_id: string | null;
  attempts: number;
  reason: string | null;
  trigger: IFiringTrigger;
}

/** A notification, promotion, warning or breakage recorded for a schedule. */
export interface IScheduleEvent {
  at: string | null;
  kind: string;
  status: string;
  key: string | null;
  target: string | null;
  message: string | null;
}

/** `GET /nbops/schedules/NAME` (and what adding one answers, with `warnings`). */
export interface IScheduleDetail {
  schedule: IScheduleSummary;
  /** The last firings, newest first. */
  firings: IFiring[];
  events: IScheduleEvent[];
  /** Said when adding: e.g. a glob that matches nothing yet. */
  warnings?: string[];
}

/** `POST /nbops/schedules`: one of cron (with tz), every, on_change, after. */
export interface IScheduleRequest {
  name?: string;
  cron?: string;
  tz?: string;
  every?: string;
  on_change?: string[];
  after?: string;
  params?: Record<string, unknown>;
  notify?: string[];
  notify_on?: string[];
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const DAY_NAMES: Record<string, number> = { sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6 };
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MACROS: Record<string, string> = {
  '@hourly': '0 * * * *',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@weekly': '0 0 * * 0',
  '@monthly': '0 0 1 * *'
};

/** An interval in the largest whole unit: 600 → "10 min", 3600 → "hour", 7200 → "2 h", 86400 → "day". */
export function intervalText(seconds: number): string {
  for (const [unit, size] of [
    ['day', 86400],
    ['h', 3600],
    ['min', 60]
  ] as const) {
    if (seconds >= size && seconds % size === 0) {
      const n = seconds / size;
      if (unit === 'day') {
        return n === 1 ? 'day' : `${n} days`;
      }
      return unit === 'h' && n === 1 ? 'hour' : `${n} ${unit}`;
    }
  }
  return `${seconds} s`;
}

const pad = (n: number) => String(n).padStart(2, '0');
const isNumber = (s: string) => /^\d+$/.test(s);

function dayName(field: string): string | null {
  const n = isNumber(field) ? Number(field) % 7 : DAY_NAMES[field.toLowerCase()];
  return n === undefined ? null : DAYS[n];
}

/**
 * A cron expression in words for the common shapes ("every day at 03:00",
 * "every Monday at 06:30", "every 15 min", "every hour at :05"); anything else
 * as "cron <expr>" (exact, never a wrong paraphrase).
 */
export function cronText(expr: string): string {
  const raw = expr.trim();
  const fields = (MACROS[raw.toLowerCase()] ?? raw).split(/\s+/);
  if (fields.length !== 5) {
    return `cron ${raw}`;
  }
  const [minute, hour, dom, month, dow] = fields;
  const step = /^\*\/(\d+)$/;
  if (month !== '*' || (dom !== '*' && dow !== '*')) {
    return `cron ${raw}`;
  }
  if (hour === '*' && dom === '*' && dow === '*') {
    if (minute === '*') {
      return 'every minute';
    }
    const m = step.exec(minute);
    if (m) {
      return `every ${intervalText(Number(m[1]) * 60)}`;
    }
    return isNumber(minute) ? `every hour at :${pad(Number(minute))}` : `cron ${raw}`;
  }
  if (!isNumber(minute)) {
    return `cron ${raw}`;
  }
  const hs = step.exec(hour);
  if (hs && dom === '*' && dow === '*') {
    return `every ${intervalText(Number(hs[1]) * 3600)} at :${pad(Number(minute))}`;
  }
  const hours = hour.split(',');
  if (!hours.every(isNumber)) {
    return `cron ${raw}`;
  }
  const at = hours.map(x => `${pad(Number(x))}:${pad(Number(minute))}`).join(', ');
  if (dom === '*' && dow === '*') {
    return `every day at ${at}`;
  }
  if (dom !== '*') {
    return isNumber(dom) ? `on day ${Number(dom)} of every month at ${at}` : `cron ${raw}`;
  }
  if (/^(1-5|mon-fri)$/i.test(dow)) {
    return `every weekday at ${at}`;
  }
  const days = dow.split(',').map(dayName);
  return days.every(Boolean) ? `every ${days.join(', ')} at ${at}` : `cron ${raw}`;
}

/** The trigger in words: "every day at 03:00 Europe/Berlin", "every 10 min", "when data/*.csv changes", "after nightly". */
export function triggerText(t: ITrigger): string {
  switch (t.kind) {
    case 'cron': {
      const text = cronText(t.cron ?? '');
      return t.tz ? `${text} ${t.tz}` : text;
    }
    case 'every':
      return `every ${intervalText(t.seconds ?? 0)}`;
    case 'on_change': {
      const watch = t.watch ?? [];
      if (t.from_inputs || (watch.length === 1 && watch[0] === 'inputs')) {
        return 'when its inputs change';
      }
      const list = watch.length > 1 ? `${watch.slice(0, -1).join(', ')} or ${watch[watch.length - 1]}` : watch[0];
      return `when ${list ?? '?'} changes`;
    }
    case 'after':
      return `after ${t.schedule ?? '?'}`;
    default:
      return t.kind;
  }
}

/**
 * A firing time as the schedule's own wall clock says it: "Dec 1 03:00 +01:00"
 * (read from the ISO text, so the browser's zone never shifts it).
 */
export function firingTime(iso: string | null | undefined): string {
  if (!iso) {
    return '';
  }
  const m = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/.exec(iso);
  if (!m) {
    return iso;
  }
  const [, , month, day, hh, mm, ss, zone] = m;
  const seconds = ss && ss !== '00' ? `:${ss}` : '';
  const offset = !zone ? '' : zone === 'Z' || zone === '+00:00' ? ' UTC' : ` ${zone}`;
  return `${MONTHS[Number(month) - 1]} ${Number(day)} ${hh}:${mm}${seconds}${offset}`;
}

/** What fired a run, in words: "data/a.csv changed (hash 1a2b3c4d)", "run now", "due Dec 1 03:00". */
export function firingTriggerText(f: Pick<IFiring, 'key' | 'trigger' | 'due_at'>): string {
  const t = f.trigger ?? {};
  const files = t.files ?? [];
  if (files.length) {
    return files.map(x => `${x.path} changed (hash ${x.hash.slice(0, 8)})`).join(', ');
  }
  const kind = f.key.split(':', 1)[0];
  if (kind === 'manual') {
    return 'run now';
  }
  if (kind === 'after') {
    return `after run ${f.key.slice('after:'.length)}`;
  }
  return f.due_at ? `due ${firingTime(f.due_at)}` : f.key;
}

/** The badges of a schedule: "broken" wins over "paused"; none for an active one. */
export function scheduleBadges(s: Pick<IScheduleSummary, 'paused' | 'broken'>): ('broken' | 'paused')[] {
  const badges: ('broken' | 'paused')[] = [];
  if (s.broken) {
    badges.push('broken');
  }
  if (s.paused) {
    badges.push('paused');
  }
  return badges;
}

/** A list typed in one field: "data/*.csv, raw/*.json" (commas, semicolons, new lines or spaces between). */
export function parseList(text: string): string[] {
  return text
    .split(/[,;\n\s]+/)
    .map(x => x.trim())
    .filter(Boolean);
}

/**
 * Parameters typed as "n_rows=1000, model=rf": values read as JSON when they are
 * (numbers, true, null, quoted strings), else kept as text. Data, never code.
 */
export function parseParams(text: string): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  for (const part of text.split(/[,;\n]/)) {
    const item = part.trim();
    if (!item) {
      continue;
    }
    const eq = item.indexOf('=');
    if (eq <= 0) {
      throw new Error(`"${item}" is not name=value`);
    }
    const key = item.slice(0, eq).trim();
    const raw = item.slice(eq + 1).trim();
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    params[key] = value;
  }
  return params;
}
