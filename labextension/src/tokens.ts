/**
 * The contract with the nbops server extension (the JSON shapes of
 * docs/api.md), the command ids this extension adds, and the token through
 * which other extensions add sections to the Pipeline panel.
 */
import { NotebookPanel } from '@jupyterlab/notebook';
import { Token } from '@lumino/coreutils';
import { ISignal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { RunStatus, StageStatus } from './status';

export { RunStatus, StageStatus };

export namespace CommandIDs {
  export const assignStage = 'nbops:assign-stage';
  export const runPipeline = 'nbops:run-pipeline';
  export const showRuns = 'nbops:show-runs';
  export const openPanel = 'nbops:open-panel';
}

export interface IResources {
  gpus: number;
  cpus: number | null;
  memory: number | null;
  timeout: number | null;
  retries: number;
}

export interface IStage {
  name: string;
  cells: number[];
  implicit: boolean;
  upstream: string[];
  inputs: Record<string, string>;
  outputs: string[];
  parameters: string[];
  setup_cells: number[];
  metrics: string[];
  resources: IResources;
  cache: boolean;
}

export interface IEdge {
  source: string;
  target: string;
  variables: string[];
  explicit: boolean;
}

export interface IParameter {
  name: string;
  default: unknown;
  type: string;
}

export type CellRoleName = 'parameters' | 'setup' | 'skip' | 'stage' | 'metrics' | 'markdown' | 'raw';

export interface ICellInfo {
  index: number;
  cell_type: string;
  role: CellRoleName;
  stage: string | null;
  first_line: string;
}

export interface IIssue {
  code: string;
  kind: 'error' | 'warning';
  message: string;
  fix: string;
  cell: number | null;
  first_line: string | null;
}

/** `POST /nbops/graph`. */
export interface IGraph {
  schema: string;
  notebook: string;
  stages: IStage[];
  edges: IEdge[];
  parameters: IParameter[];
  cells: ICellInfo[];
  warnings: IIssue[];
  errors: IIssue[];
}

/** Why a stage runs or is reused (nbops/plan/explain.py REASON_KINDS). */
export type ReasonKind =
  'first-run' | 'code' | 'params' | 'upstream' | 'input' | 'env' | 'no-cache' | 'cache-off' | 'cached' | 'resumed';

export interface IReason {
  kind: ReasonKind;
  detail: string;
}

/** A stage of `GET /nbops/plan`. */
export interface IStagePlan {
  name: string;
  action: 'run' | 'reuse';
  reason: IReason;
  reads: string[];
}

/** `GET /nbops/plan`: what a run would do now (a dry run: nothing runs, nothing is written). */
export interface IPlan {
  notebook: string;
  stages: IStagePlan[];
}

/** Where runs are recorded: a folder (SQLite) or a database, and where their bytes go; never a password. */
export interface IStoreInfo {
  /** As people see it: a folder, or `postgresql://user:***@host/db + s3://bucket`. */
  location: string;
  kind: 'sqlite' | 'postgresql';
  /** Where objects go: a folder or an fsspec URL. */
  objects: string;
  shared_objects?: boolean;
  /** Where the setting came from: NBOPS_STORE, a config file, or "default". */
  source?: string;
}

/** `GET /nbops/runs`: the notebook's runs and the store they were read from. */
export interface IRunList {
  store: IStoreInfo;
  runs: IRunSummary[];
}

/** An item of `GET /nbops/runs`. */
export interface IRunSummary {
  id: string;
  status: RunStatus;
  /** Who started it (NBOPS_USER or the OS user) and on which machine; null in records older than both. */
  user?: string | null;
  host?: string | null;
  started_at: string | null;
  ended_at: string | null;
  notebook: string;
  params: Record<string, unknown>;
  metrics: Record<string, unknown>;
  duration_s: number | null;
  /** Stage statuses, in order (list items; the detail has full stage records). */
  stages?: { name: string; status: StageStatus }[];
}

export interface IStageError {
  ename: string;
  evalue: string;
  /** The cell of the user's notebook that failed (null: generated code, or unknown). */
  cell?: number | null;
  /** Its first non-blank line. */
  first_line?: string;
  /** True when the failing cell is code nbops generated (loading inputs, saving outputs). */
  generated?: boolean;
  /** Why the failing cell could not be found. */
  cell_note?: string;
  /** Index in the generated stage notebook: not a cell the user knows. */
  cell_index: number | null;
  cell_source: string | null;
  traceback?: string | null;
}

export interface IStageRun {
  name: string;
  status: StageStatus;
  started_at: string | null;
  ended_at: string | null;
  duration_s: number | null;
  metrics: Record<string, unknown>;
  error: IStageError | null;
  has_notebook: boolean;
  /** Why it ran or was reused; null for a stage not reached, or an older record. */
  reason?: IReason | null;
  /** The data files, folders and remote objects the stage read, with their hash when it ran. */
  data?: IDataInput[];
  /** The variables the stage handed on, by name (what "Register as model" offers). */
  outputs?: Record<string, IStageOutput>;
}

/** One output of a stage: its file in the store, how it was saved and its Python type. */
export interface IStageOutput {
  file: string;
  serializer: string;
  sha256: string;
  type?: string;
  bytes?: number;
}

/** One data input of a stage, as the run recorded it. */
export interface IDataInput {
  kind: 'file' | 'dir' | 'remote';
  path: string;
  sha256: string | null;
}

/** `GET /nbops/runs/<id>`. */
export interface IRun extends IRunSummary {
  /** A name, or an object with the executor's name and options. */
  executor: string | { name: string; [option: string]: unknown };
  stages: IStageRun[];
  /** The store this run was read from. */
  store?: IStoreInfo;
}

/** An item of `GET /nbops/models`. */
export interface IModelSummary {
  name: string;
  latest: number | null;
  /** alias -> the version it points at */
  aliases: Record<string, number>;
  created_by: string | null;
  created_at: string | null;
}

/** `GET /nbops/models?path=`: the models of the notebook's store. */
export interface IModelList {
  store: IStoreInfo;
  models: IModelSummary[];
}

/** A registered version: where it came from (run, stage, variable) and what that run measured. */
export interface IModelVersion {
  name: string;
  version: number;
  run_id: string;
  stage: string;
  var: string;
  sha256: string;
  flavor: string;
  type: string | null;
  signature: Record<string, unknown>;
  metrics: Record<string, unknown>;
  params: Record<string, unknown>;
  source: string;
  message: string | null;
  created_by: string | null;
  created_at: string | null;
  aliases: string[];
}

/** `GET /nbops/models/<name>?path=`. */
export interface IModelDetail {
  name: string;
  aliases: Record<string, number>;
  versions: IModelVersion[];
  /** Where the registry is (a folder or a masked database URL). */
  store: string;
}

/** One gate of a promotion and its verdict, with the values compared. */
export interface IGateResult {
  gate: string;
  passed: boolean;
  metric?: string;
  value?: unknown;
  bound?: number;
  other?: unknown;
  other_version?: number;
  note?: string;
}

/** One move of an alias (`GET /nbops/models/<name>/history`), oldest first. */
export interface IAliasEvent {
  alias: string;
  action: 'promote' | 'rollback' | string;
  from: number | null;
  to: number | null;
  user: string | null;
  at: string | null;
  message: string | null;
  gates: IGateResult[];
}

/** What promote and rollback answer. */
export interface IAliasMove {
  name: string;
  alias: string;
  from: number | null;
  to: number;
  gates: IGateResult[];
}

/** `POST /nbops/models/<name>/promote` (besides `path`). */
export interface IPromoteRequest {
  version: number;
  alias: string;
  message?: string;
  /** Metric conditions such as `accuracy>=0.8`. */
  require?: string[];
  /** An alias whose version this one must beat on their shared metrics. */
  better_than?: string;
}

/** How fresh the online copy of a feature table is (from the store's records). */
export interface IFreshness {
  name: string;
  /** The online store, as records show it (no password). */
  online: string;
  materialized: boolean;
  status: 'fresh' | 'behind' | 'never';
  materialized_at: string | null;
  age_seconds: number | null;
  /** The version materialized, and the newest offline one. */
  version: number | null;
  latest_version: number;
  versions_behind: number | null;
  max_ts: string | null;
  offline_max_ts: string | null;
  /** How far the newest online feature time is behind the offline table's. */
  lag_seconds: number | null;
  rows: number | null;
  summary: string;
}

/** An item of `GET /nbops/features`. */
export interface IFeatureTable {
  name: string;
  entity: string;
  timestamp: string;
  latest: number;
  versions: number;
  description: string | null;
  created_by: string | null;
  created_at: string | null;
  online: IFreshness;
}

/** `GET /nbops/features?path=`. */
export interface IFeatureTableList {
  store: IStoreInfo;
  tables: IFeatureTable[];
}

/** A published version of a feature table. */
export interface IFeatureVersion {
  name: string;
  version: number;
  ref: string;
  entity: string;
  timestamp: string;
  rows: number;
  entities: number | null;
  min_ts: string | null;
  max_ts: string | null;
  columns: { name: string; dtype: string }[];
  sha256: string;
  run_id: string | null;
  stage: string | null;
  var: string | null;
  breaking: boolean;
  created_by: string | null;
  created_at: string | null;
}

/** `GET /nbops/features/<table>?path=`. */
export interface IFeatureTableDetail {
  name: string;
  entity: string;
  timestamp: string;
  description: string | null;
  versions: IFeatureVersion[];
  /** The version the request named (the latest for a bare name). */
  version: IFeatureVersion;
  online?: IFreshness;
  store: string;
}

/** The error body every /nbops/ route answers with (`NbopsError.to_json()`). */
export interface IErrorBody {
  error: string;
  message: string;
  fix?: string | null;
  issues?: IIssue[];
}

/** What the panel knows of the active notebook; sections render from it. */
export interface IPipelineModel {
  /** Emitted with what changed. */
  readonly changed: ISignal<IPipelineModel, PipelineChange>;
  readonly notebook: NotebookPanel | null;
  /** The stage graph of the notebook as it is in the editor (saved or not). */
  readonly graph: IGraph | null;
  readonly graphError: string | null;
  /** What a run would do now, from the saved notebook; null before the first answer or on error. */
  readonly plan: IPlan | null;
  /** The notebook's runs, newest first. */
  readonly runs: IRunSummary[];
  /** The run store of the notebook (as the CLI resolves it); null until the server answers. */
  readonly store: IStoreInfo | null;
  readonly runsError: string | null;
  /** A run with its stages, when it was loaded. */
  run(id: string): IRun | undefined;
}

export type PipelineChange = 'notebook' | 'graph' | 'plan' | 'runs' | 'cell';

export interface ISectionOptions {
  /** Sections are ordered by rank, lowest first; the built-in ones use 100 to 600. */
  rank?: number;
}

/** The Pipeline side panel. */
export interface IPipelinePanel {
  readonly model: IPipelineModel;
  /** Add a section (a widget) to the panel; disposing the widget removes it. */
  addSection(widget: Widget, options?: ISectionOptions): void;
}

export const IPipelinePanel = new Token<IPipelinePanel>(
  'nbops:IPipelinePanel',
  'The nbops Pipeline panel: its model (graph, plan, runs of the active notebook) and a way to add sections.'
);
