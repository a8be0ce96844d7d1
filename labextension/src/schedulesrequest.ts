/**
 * The requests of the Schedules section (nbops/server/schedules_routes.py). A
 * failed one rejects with an `NbopsRequestError` carrying the server's message and fix.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { NbopsRequestError } from './request';
import { IScheduleDetail, IScheduleRequest, IScheduleSummary } from './scheduleformat';
import { IStoreInfo } from './tokens';

// As request.ts's `request` (not exported there): the server's message and fix on failure.
async function call<T>(endpoint: string, init: RequestInit = {}, query: Record<string, string> = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const search = new URLSearchParams(query).toString();
  const url = URLExt.join(settings.baseUrl, 'nbops', 'schedules', endpoint) + (search ? `?${search}` : '');
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new NbopsRequestError(
      0,
      `the Jupyter server cannot be reached: ${error}`,
      'check that the server is running'
    );
  }
  const text = await response.text();
  let body: { message?: string; fix?: string | null; error?: string } | null = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    throw new NbopsRequestError(
      response.status,
      body?.message ?? `${response.status} ${response.statusText}`,
      body?.fix ?? null,
      body?.error ?? 'Error'
    );
  }
  return body as T;
}

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
