/**
 * The requests of the Schedules section (nbops/server/schedules_routes.py). A
 * failed one rejects with an `NbopsRequestError` carrying the server's message and fix.
 */
import { request } from './request';
import { IScheduleDetail, IScheduleRequest, IScheduleSummary } from './scheduleformat';
import { IStoreInfo } from './tokens';

const call = <T>(endpoint: string, init: RequestInit = {}, query: Record<string, string> = {}): Promise<T> =>
  request<T>(endpoint ? `schedules/${endpoint}` : 'schedules', init, query);

const one = (name: string, action = '') => encodeURIComponent(name) + (action ? `/${encodeURIComponent(action)}` : '');

export function listSchedules(path: string): Promise<{ store: IStoreInfo; schedules: IScheduleSummary[] }> {
  return call('', {}, { path });
}

export function getSchedule(name: string, path: string): Promise<IScheduleDetail> {
  return call(one(name), {}, { path });
}

export function addSchedule(path: string, body: IScheduleRequest): Promise<IScheduleDetail> {
  return call('', { method: 'POST', body: JSON.stringify({ path, ...body }) });
}

/** Pause or resume: the schedule as it is now. */
export function setPaused(name: string, paused: boolean, path: string): Promise<IScheduleSummary> {
  return call(one(name, paused ? 'pause' : 'resume'), { method: 'POST', body: JSON.stringify({ path }) });
}

/** Queue a firing now; answered once it is recorded (the run goes on in the scheduler or the server). */
export function runNow(
  name: string,
  path: string
): Promise<{ name: string; key: string; status: string; message: string }> {
  return call(one(name, 'run-now'), { method: 'POST', body: JSON.stringify({ path }) });
}

export function removeSchedule(name: string, path: string): Promise<{ removed: string; notebook: string }> {
  return call(one(name), { method: 'DELETE' }, { path });
}
