/** Numbers, durations, times, authors and stores as the panel shows them (pure: no DOM). */
import type { IStoreInfo } from './tokens';

/** Seconds as "0.4 s", "12 s", "3 min 05 s". */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '';
  }
  if (seconds < 10) {
    return `${seconds.toFixed(1)} s`;
  }
  if (seconds < 60) {
    return `${Math.round(seconds)} s`;
  }
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return `${m} min ${String(s).padStart(2, '0')} s`;
}

/** A metric or parameter value, short. */
export function formatValue(value: unknown): string {
  if (typeof value === 'number') {
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
  }
  if (typeof value === 'string') {
    return value;
  }
  return JSON.stringify(value);
}

/** An ISO time as local "HH:MM:SS", or "Mon DD HH:MM" when not today. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) {
    return '';
  }
  const t = new Date(iso);
  if (isNaN(t.getTime())) {
    return iso;
  }
  const today = new Date().toDateString() === t.toDateString();
  return today
    ? t.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
    : t.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/** Who ran a run: "alice@build-7", "alice", or "" for a record that kept neither. */
export function formatAuthor(run: { user?: string | null; host?: string | null }): string {
  if (!run.user) {
    return run.host ? `?@${run.host}` : '';
  }
  return run.host ? `${run.user}@${run.host}` : run.user;
}

const STORE_KIND: Record<string, string> = { sqlite: 'local', postgresql: 'team' };

/** A store in one line: "team (postgresql) postgresql://alice:***@db/runs + s3://bucket". */
export function formatStore(store: IStoreInfo): string {
  const kind = STORE_KIND[store.kind] ? `${STORE_KIND[store.kind]} (${store.kind})` : store.kind;
  return `${kind} ${store.location}`;
}
