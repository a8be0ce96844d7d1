/**
 * Pure helpers that read and write the nbops tag vocabulary of one cell
 * (DESIGN.md, "Tag vocabulary"). They take and return plain string arrays:
 * the panel writes the result into the cell model's `tags` metadata, so the
 * file holds exactly the tags the CLI reads. Kale's aliases are understood on
 * read and replaced by the nbops spelling on write. Tags of other tools are
 * kept, in their order.
 */

/** A cell's one role; `undefined` for an ordinary stage cell. */
export type CellRole = 'parameters' | 'setup' | 'skip' | 'metrics';

export const ROLES: readonly CellRole[] = ['parameters', 'setup', 'skip', 'metrics'];

/** Resource and policy keys written as `key:value`. */
export type ResourceKey = 'gpus' | 'cpus' | 'memory' | 'timeout' | 'retries';

export const RESOURCE_KEYS: readonly ResourceKey[] = ['gpus', 'cpus', 'memory', 'timeout', 'retries'];

/** What one cell's tags say, in nbops terms. */
export interface ICellTags {
  stage: string | null;
  role: CellRole | null;
  after: string[];
  resources: Partial<Record<ResourceKey, string>>;
  cacheOff: boolean;
  /** Tags nbops does not read (other tools'), kept untouched. */
  other: string[];
}

const ROLE_ALIASES: Record<string, CellRole> = {
  parameters: 'parameters',
  'pipeline-parameters': 'parameters',
  setup: 'setup',
  imports: 'setup',
  functions: 'setup',
  skip: 'skip',
  metrics: 'metrics',
  'pipeline-metrics': 'metrics'
};
const STAGE_PREFIXES = ['stage:', 'step:', 'block:'];
const AFTER_PREFIXES = ['after:', 'prev:'];
const KALE_GPU = 'limit:nvidia.com/gpu:';
const CACHE_OFF = 'cache:off';

/**
 * nbops/notebook/tags.py STAGE_NAME_RE, the one rule: an ASCII identifier.
 * Python keywords pass there too (`stage:class` names stage notebook
 * class.ipynb, never a variable), so they pass here.
 */
const STAGE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const STAGE_NAME_RULE = 'use letters, digits and _ only, not starting with a digit, e.g. train_model';

/** Whether `name` is a stage name the Python side accepts. */
export function isValidStageName(name: string): boolean {
  return STAGE_NAME.test(name);
}

/** Why `name` is not a stage name, or `null` when it is one. */
export function stageNameProblem(name: string): string | null {
  return isValidStageName(name) ? null : `"${name}" is not a valid stage name: ${STAGE_NAME_RULE}`;
}

function afterPrefix(tag: string): string | undefined {
  return AFTER_PREFIXES.find(p => tag.startsWith(p));
}

function stagePrefix(tag: string): string | undefined {
  return STAGE_PREFIXES.find(p => tag.startsWith(p));
}

function resourceKeyOf(tag: string): ResourceKey | undefined {
  if (tag.startsWith(KALE_GPU)) {
    return 'gpus';
  }
  const key = tag.split(':', 1)[0] as ResourceKey;
  return tag.includes(':') && RESOURCE_KEYS.includes(key) ? key : undefined;
}

/** Whether `tag` is one nbops reads (and so one the setters may rewrite). */
function isNbopsTag(tag: string): boolean {
  const t = tag.trim();
  return (
    t in ROLE_ALIASES ||
    t === CACHE_OFF ||
    stagePrefix(t) !== undefined ||
    afterPrefix(t) !== undefined ||
    resourceKeyOf(t) !== undefined
  );
}

/** Read a cell's tags (missing or malformed metadata reads as no tags). */
export function readTags(tags: unknown): ICellTags {
  const out: ICellTags = { stage: null, role: null, after: [], resources: {}, cacheOff: false, other: [] };
  if (!Array.isArray(tags)) {
    return out;
  }
  for (const raw of tags) {
    if (typeof raw !== 'string') {
      continue;
    }
    const tag = raw.trim();
    const sp = stagePrefix(tag);
    const ap = afterPrefix(tag);
    const rk = resourceKeyOf(tag);
    if (tag in ROLE_ALIASES) {
      out.role = out.role ?? ROLE_ALIASES[tag];
    } else if (sp) {
      out.stage = out.stage ?? tag.slice(sp.length);
    } else if (ap) {
      const name = tag.slice(ap.length);
      if (!out.after.includes(name)) {
        out.after.push(name);
      }
    } else if (tag === CACHE_OFF) {
      out.cacheOff = true;
    } else if (rk) {
      const value = tag.startsWith(KALE_GPU) ? tag.slice(KALE_GPU.length) : tag.slice(rk.length + 1);
      out.resources[rk] = out.resources[rk] ?? value;
    } else {
      out.other.push(raw);
    }
  }
  return out;
}

/** Rewrite the tags matched by `matches` as `replacement`, placed where the first one was. */
function replaceTags(tags: readonly string[], matches: (tag: string) => boolean, replacement: string[]): string[] {
  const at = tags.findIndex(t => matches(t.trim()));
  const kept = tags.filter(t => !matches(t.trim()));
  if (at < 0) {
    return [...kept, ...replacement];
  }
  const before = tags.slice(0, at).filter(t => !matches(t.trim())).length;
  return [...kept.slice(0, before), ...replacement, ...kept.slice(before)];
}

/** Put the cell in stage `name` (`null`: no stage tag, the cell joins the stage above it). */
export function setStage(tags: readonly string[], name: string | null): string[] {
  const problem = name === null ? null : stageNameProblem(name);
  if (problem) {
    throw new Error(problem);
  }
  return replaceTags(tags, t => stagePrefix(t) !== undefined, name === null ? [] : [`stage:${name}`]);
}

/** Give the cell one role (`null`: an ordinary stage cell). Roles exclude each other. */
export function setRole(tags: readonly string[], role: CellRole | null): string[] {
  return replaceTags(tags, t => t in ROLE_ALIASES, role === null ? [] : [role]);
}

/** Explicit upstream stages of the cell's stage, in addition to the data edges. */
export function setAfter(tags: readonly string[], stages: readonly string[]): string[] {
  const unique = stages.filter((s, i) => stages.indexOf(s) === i);
  for (const s of unique) {
    const problem = stageNameProblem(s);
    if (problem) {
      throw new Error(problem);
    }
  }
  return replaceTags(
    tags,
    t => afterPrefix(t) !== undefined,
    unique.map(s => `after:${s}`)
  );
}

const RESOURCE_FORMAT: Record<ResourceKey, RegExp> = {
  gpus: /^\d+$/,
  retries: /^\d+$/,
  cpus: /^(\d+\.?\d*|\.\d+)$/,
  timeout: /^(\d+\.?\d*|\.\d+)$/,
  memory: /^(\d+\.?\d*|\.\d+)\s*([KMGT]?)(i?)B?$/i
};

const RESOURCE_HINT: Record<ResourceKey, string> = {
  gpus: 'a whole number, e.g. 1',
  retries: 'a whole number, e.g. 2',
  cpus: 'a number, e.g. 2 or 0.5',
  timeout: 'seconds, e.g. 600',
  memory: 'a size, e.g. 512M or 4Gi'
};

/** Why `value` is not valid for `key`, or `null` when it is. */
export function resourceProblem(key: ResourceKey, value: string): string | null {
  return RESOURCE_FORMAT[key].test(value.trim()) ? null : `${key} must be ${RESOURCE_HINT[key]}`;
}

/** Set (or with `null`/'' remove) one resource of the cell's stage. */
export function setResource(tags: readonly string[], key: ResourceKey, value: string | null): string[] {
  const v = (value ?? '').trim();
  if (v !== '') {
    const problem = resourceProblem(key, v);
    if (problem) {
      throw new Error(problem);
    }
  }
  return replaceTags(tags, t => resourceKeyOf(t) === key, v === '' ? [] : [`${key}:${v.replace(/\s+/g, '')}`]);
}

/** `cache:off`: never reuse this stage's cached outputs. */
export function setCacheOff(tags: readonly string[], off: boolean): string[] {
  return replaceTags(tags, t => t === CACHE_OFF, off ? [CACHE_OFF] : []);
}

/** Drop every nbops tag, keeping other tools' tags. */
export function clearNbopsTags(tags: readonly string[]): string[] {
  return tags.filter(t => !isNbopsTag(t));
}
