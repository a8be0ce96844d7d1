/**
 * The contract with the nbops server extension: the JSON shapes of
 * docs/api.md, and the command ids this extension adds.
 */

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

export type RunStatus = 'running' | 'succeeded' | 'failed' | 'interrupted';
export type StageStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'cached' | 'skipped';

/** An item of `GET /nbops/runs`. */
export interface IRunSummary {
  id: string;
  status: RunStatus;
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
  cell_index: number | null;
  cell_source: string | null;
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
}

/** `GET /nbops/runs/<id>`. */
export interface IRun extends IRunSummary {
  /** A name, or an object with the executor's name and options. */
  executor: string | { name: string; [option: string]: unknown };
  stages: IStageRun[];
}

/** The error body every /nbops/ route answers with (`NbopsError.to_json()`). */
export interface IErrorBody {
  error: string;
  message: string;
  fix?: string | null;
  issues?: IIssue[];
}
