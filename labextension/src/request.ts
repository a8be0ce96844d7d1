/**
 * The one place that talks to the nbops server extension. A failed request
 * becomes an `NbopsRequestError` carrying the server's message and fix.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  IAliasEvent,
  IAliasMove,
  IErrorBody,
  IFeatureTableDetail,
  IFeatureTableList,
  IGraph,
  IModelDetail,
  IModelList,
  IModelVersion,
  IPlan,
  IPromoteRequest,
  IRun,
  IRunList
} from './tokens';

export class NbopsRequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly fix: string | null = null,
    readonly kind: string = 'Error'
  ) {
    super(message);
    this.name = 'NbopsRequestError';
  }
}

export async function request<T>(
  endpoint: string,
  init: RequestInit = {},
  query: Record<string, string> = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const search = new URLSearchParams(query).toString();
  const url = URLExt.join(settings.baseUrl, 'nbops', endpoint) + (search ? `?${search}` : '');
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
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    const err = body as Partial<IErrorBody> | null;
    if (response.status === 404 && (!err || !err.error)) {
      throw new NbopsRequestError(
        404,
        'the nbops server extension is not enabled',
        'pip install nbops, then restart JupyterLab (jupyter server extension list should show nbops)'
      );
    }
    throw new NbopsRequestError(
      response.status,
      err?.message ?? `${response.status} ${response.statusText}`,
      err?.fix ?? null,
      err?.error ?? 'Error'
    );
  }
  return body as T;
}

function post(body: unknown): RequestInit {
  return { method: 'POST', body: JSON.stringify(body) };
}

/** The stage graph of `content` (the unsaved notebook JSON) at `path`. */
export function fetchGraph(path: string, content?: unknown): Promise<IGraph> {
  return request<IGraph>('graph', post({ path, content }));
}

/** Start a run in the server; resolves to its id as soon as it is recorded. */
export async function startRun(path: string, params: Record<string, string>, executor: string): Promise<string> {
  const answer = await request<{ id: string }>('runs', post({ path, params, executor }));
  return answer.id;
}

/** The runs of the notebook at `path`, newest first, and the store they live in. */
export function listRuns(path: string, limit = 20): Promise<IRunList> {
  return request<IRunList>('runs', {}, { path, limit: String(limit) });
}

export function getRun(runId: string, path: string): Promise<IRun> {
  return request<IRun>(`runs/${encodeURIComponent(runId)}`, {}, { path });
}

/** The executed notebook (nbformat JSON) of one stage of a run. */
export function getStageNotebook(runId: string, stage: string, path: string): Promise<Record<string, unknown>> {
  return request(`runs/${encodeURIComponent(runId)}/stages/${encodeURIComponent(stage)}/notebook`, {}, { path });
}

/** What a run of the saved notebook would do now, and why (nothing runs). */
export function fetchPlan(path: string): Promise<IPlan> {
  return request<IPlan>('plan', {}, { path });
}

/** The registered models of the notebook's store (none when it has no store yet). */
export function listModels(path: string): Promise<IModelList> {
  return request<IModelList>('models', {}, { path });
}

/** One model: its versions (metrics, source run) and aliases. */
export function getModel(name: string, path: string): Promise<IModelDetail> {
  return request<IModelDetail>(`models/${encodeURIComponent(name)}`, {}, { path });
}

/** Every alias move of a model, oldest first. */
export async function getModelHistory(name: string, path: string): Promise<IAliasEvent[]> {
  const answer = await request<{ history: IAliasEvent[] }>(`models/${encodeURIComponent(name)}/history`, {}, { path });
  return answer.history;
}

/** Move an alias to a version; a gate that fails rejects with a 409 naming both values. */
export function promoteModel(name: string, path: string, body: IPromoteRequest): Promise<IAliasMove> {
  return request<IAliasMove>(`models/${encodeURIComponent(name)}/promote`, post({ path, ...body }));
}

/** Move an alias back to the version it held before. */
export function rollbackModel(name: string, path: string, alias: string, message?: string): Promise<IAliasMove> {
  return request<IAliasMove>(`models/${encodeURIComponent(name)}/rollback`, post({ path, alias, message }));
}

/** Register output `variable` of `stage` in run `run` as a new version of model `name`. */
export function registerModel(
  path: string,
  run: string,
  stage: string,
  variable: string,
  name: string,
  message?: string
): Promise<IModelVersion> {
  return request<IModelVersion>('models/register', post({ path, run, stage, var: variable, name, message }));
}

/** The feature tables of the notebook's store, each with its online freshness. */
export function listFeatureTables(path: string): Promise<IFeatureTableList> {
  return request<IFeatureTableList>('features', {}, { path });
}

/** One feature table: its versions, and the freshness of its online copy. */
export function getFeatureTable(name: string, path: string): Promise<IFeatureTableDetail> {
  return request<IFeatureTableDetail>(`features/${encodeURIComponent(name)}`, {}, { path });
}
