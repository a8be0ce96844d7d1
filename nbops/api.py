"""The library calls every surface makes (CLI, server, magics, widgets).

Each function takes plain values, does one job and returns plain data (the
JSON shapes in docs/api.md). Surfaces parse their input, call one of these,
and render the result.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import nbops
from nbops.errors import NbopsError, NotFoundError, ParameterError, UsageError
from nbops.graph import StageGraph, build_graph
from nbops.notebook import STAGE_NAME_RE, notebook_from_dict, read_notebook
from nbops.plan import is_secret, load_params_file, parse_assignments, resolve_params
from nbops.spec import PipelineSpec, load_pipeline
from nbops.spec import convert as convert_graph
from nbops.status import DONE_OK, SKIPPED, SUCCEEDED
from nbops.store import RunStore, iso, validate_run_id

__all__ = [
    "graph", "load_graph", "convert", "prepare", "open_store", "open_executor", "run", "start_run", "list_runs", "get_run",
    "stage_notebook", "resume", "rerun", "diff_runs", "run_to_json", "run_metrics", "validate_run_id",
    "validate_stage_name", "Prepared", "RunContext", "plan_run", "why", "store_root",
]  # fmt: skip


def validate_stage_name(name: str) -> str:
    if not isinstance(name, str) or not STAGE_NAME_RE.fullmatch(name):
        raise UsageError(f"{name!r} is not a stage name", "stage names are identifiers: letters, digits and _")
    return name


# -- graph and convert -----------------------------------------------------------------


def load_graph(path: str | os.PathLike, content: Mapping | None = None) -> StageGraph:
    nb = notebook_from_dict(dict(content), os.fspath(path)) if content is not None else read_notebook(path)
    return build_graph(nb)


def graph(path: str | os.PathLike, content: Mapping | None = None) -> dict:
    """The stage graph JSON; analysis problems are in "errors", not raised."""
    return load_graph(path, content).to_json()


def convert(path: str | os.PathLike, out_dir: str | os.PathLike) -> PipelineSpec:
    return convert_graph(load_graph(path).raise_for_errors(), out_dir, path)


# -- preparing a run -----------------------------------------------------------------------


@dataclass
class Prepared:
    spec: PipelineSpec
    notebook: str  # absolute path of the source notebook
    cwd: str
    store: RunStore


def store_root(store: str | os.PathLike | None, near: str | os.PathLike) -> Path:
    """``store``, else $NBOPS_STORE, else ``.nbops/`` beside ``near`` (a notebook or folder); nothing is created."""
    if store is None:
        store = os.environ.get("NBOPS_STORE")
    if store is None:
        base = Path(near)
        store = (base if base.is_dir() else base.parent) / ".nbops"
    return Path(store)


def open_store(store: str | os.PathLike | None, near: str | os.PathLike) -> RunStore:
    return RunStore(store_root(store, near))


def prepare(target: str | os.PathLike, store: str | os.PathLike | None = None) -> Prepared:
    """A notebook (converted into the store) or a folder made by ``nbops convert``."""
    path = Path(target)
    if path.is_dir():
        spec = load_pipeline(path)
        source = spec.source_notebook
        cwd = source.parent if source.parent.is_dir() else path.resolve()
        return Prepared(spec, str(source), str(cwd), open_store(store, source if source.exists() else path))
    if not path.exists():
        raise NotFoundError(f"{path} not found", "pass a notebook (.ipynb) or a folder made by 'nbops convert'")
    g = load_graph(path).raise_for_errors()
    rs = open_store(store, path)
    absolute = path.resolve()
    # Same notebook bytes at the same place -> the same converted pipeline folder.
    key = hashlib.sha256(f"{absolute}\0{g.notebook.sha256}\0{nbops.__version__}".encode()).hexdigest()[:16]
    out = rs.pipelines_dir() / key
    spec = load_pipeline(out) if (out / "pipeline.yaml").exists() else convert_graph(g, out, absolute)
    return Prepared(spec, str(absolute), str(absolute.parent), rs)


def _params(prep: Prepared, params: Mapping[str, Any] | None, params_file: str | None, pairs: list[str] | None) -> dict:
    given: dict[str, Any] = {}
    if params_file:
        given.update(load_params_file(params_file))
    given.update(parse_assignments(pairs or []))
    given.update(params or {})
    return resolve_params(prep.spec.parameters, given, prep.notebook)


# -- running -----------------------------------------------------------------------------


def _executor(name: str, prep: Prepared, jobs: int | None, address: str | None):
    from nbops.execute import get_executor

    return get_executor(name, jobs=jobs, kernel_name=prep.spec.kernel_name, cwd=prep.cwd, address=address, store=prep.store)


def open_executor(prepared: Prepared, name: str = "local", *, jobs: int | None = None, address: str | None = None):
    """An executor for ``prepared`` that the caller keeps open across several
    ``run(..., context=RunContext(executor=...))`` calls (a sweep keeps its kernels warm); close it when done."""
    return _executor(name, prepared, jobs, address)


@dataclass
class RunContext:
    """How a run starts, beyond the user's options: what resume, rerun, sweeps,
    CI and the surfaces pass. A user calling ``run`` never needs it."""

    kind: str = "run"  # run | resume | rerun | trial
    parent_id: str | None = None
    reuse: dict[str, dict] = field(default_factory=dict)  # stage -> record to reuse (resume)
    study: str | None = None
    trial: int | None = None
    prepared: Prepared | None = None  # a pipeline already prepared (and its store)
    executor: Any = None  # an executor from ``open_executor``, kept open by the caller
    on_created: Callable[[str], None] | None = None  # told the run id as soon as it is recorded


def run(
    target: str | os.PathLike | None,
    params: Mapping[str, Any] | None = None,
    *,
    params_file: str | None = None,
    assignments: list[str] | None = None,
    executor: str = "local",
    jobs: int | None = None,
    no_cache: bool = False,
    store: str | os.PathLike | None = None,
    address: str | None = None,
    metric_names: list[str] | None = None,
    progress: Callable | None = None,
    context: RunContext | None = None,
) -> dict:
    """Run a pipeline to the end; returns the run JSON (check its "status")."""
    from nbops.execute import RunRequest, execute_run

    ctx = context or RunContext()
    prep = ctx.prepared or prepare(target, store)
    values = _params(prep, params, params_file, assignments)
    req = RunRequest(
        spec=prep.spec, params=values, store=prep.store, notebook=prep.notebook, cwd=prep.cwd, no_cache=no_cache,
        kind=ctx.kind, parent_id=ctx.parent_id, reuse=ctx.reuse, metric_names=list(metric_names or []),
        study=ctx.study, trial=ctx.trial, on_created=ctx.on_created,
    )  # fmt: skip
    if ctx.executor is not None:
        run_id = execute_run(req, ctx.executor, progress)
    else:
        with _executor(executor, prep, jobs, address) as ex:
            run_id = execute_run(req, ex, progress)
    return run_to_json(prep.store.get_run(run_id))


def start_run(
    target: str | os.PathLike,
    params: Mapping[str, Any] | None = None,
    *,
    executor: str = "local",
    store: str | os.PathLike | None = None,
    jobs: int | None = None,
    no_cache: bool = False,
) -> str:
    """Start a run in a background thread; returns its id once it is recorded."""
    prep = prepare(target, store)
    _params(prep, params, None, None)  # bad parameters fail here, before the thread
    created = threading.Event()
    box: dict[str, Any] = {}

    def on_created(run_id: str) -> None:
        box["id"] = run_id
        created.set()

    def target_fn() -> None:
        try:
            run(target, params, executor=executor, jobs=jobs, no_cache=no_cache, context=RunContext(prepared=prep, on_created=on_created))
        except BaseException as exc:  # reported to the caller if the run never started
            box["error"] = exc
            created.set()

    threading.Thread(target=target_fn, daemon=True, name="nbops-run").start()
    created.wait()
    if "id" not in box:
        err = box.get("error")
        raise err if isinstance(err, NbopsError) else NbopsError(f"the run could not start: {err}", "see the server log")
    return box["id"]


# -- what a run would do, and why a stage ran -----------------------------------------------


def plan_run(
    target: str | os.PathLike,
    params: Mapping[str, Any] | None = None,
    *,
    params_file: str | None = None,
    assignments: list[str] | None = None,
    store: str | os.PathLike | None = None,
    no_cache: bool = False,
) -> dict:
    """A dry run: which stages would run and why. Starts no kernel, writes no run,
    and creates no store where there is none (every stage is then a first run)."""
    import tempfile

    from nbops.plan import ReusePlanner

    path = Path(target)
    root = store_root(store, path if path.exists() else Path.cwd())
    if (root / "runs.db").exists() or path.is_dir():
        prep = prepare(target, store)
        values = _params(prep, params, params_file, assignments)
        planner = ReusePlanner(prep.spec, values, prep.store, notebook=prep.notebook, cwd=prep.cwd, no_cache=no_cache)
        return {"notebook": prep.notebook, "store": str(prep.store.root), "stages": [d.to_json() for d in planner.dry_run()]}
    if not path.exists():
        raise NotFoundError(f"{path} not found", "pass a notebook (.ipynb) or a folder made by 'nbops convert'")
    graph_ = load_graph(path).raise_for_errors()
    with tempfile.TemporaryDirectory(prefix="nbops-plan-") as tmp:
        spec = convert_graph(graph_, tmp, path.resolve())
        prep = Prepared(spec, str(path.resolve()), str(path.resolve().parent), None)  # type: ignore[arg-type]
        values = _params(prep, params, params_file, assignments)
        planner = ReusePlanner(spec, values, None, notebook=prep.notebook, cwd=prep.cwd, no_cache=no_cache)
        stages = [d.to_json() for d in planner.dry_run()]
    return {"notebook": prep.notebook, "store": None, "stages": stages}


def why(run_id: str, stage: str | None = None, *, path=None, store=None) -> dict:
    """Why each stage of a run ran or was reused (the reason its record keeps)."""
    run_ = get_run(run_id, path=path, store=store)
    stages = [{"name": s["name"], "status": s["status"], "reason": s["reason"]} for s in run_["stages"]]
    if stage is not None:
        validate_stage_name(stage)
        stages = [s for s in stages if s["name"] == stage]
        if not stages:
            raise NotFoundError(f"run {run_id} has no stage {stage!r}", f"stages: {', '.join(s['name'] for s in run_['stages'])}")
    return {"run_id": run_id, "notebook": run_["notebook"], "stages": stages}


# -- reading runs --------------------------------------------------------------------------


def run_metrics(run: Mapping[str, Any]) -> dict[str, Any]:
    """name -> value: logged metrics (the last step), metrics cells, named scalars."""
    metrics: dict[str, Any] = {}
    steps: dict[str, float] = {}
    for stage in run.get("stages", []):
        for m in stage.get("metrics") or []:
            step = m.get("step")
            step = -1 if step is None else step
            if m["name"] not in steps or step >= steps[m["name"]]:
                metrics[m["name"]], steps[m["name"]] = m["value"], step
    for name in (run.get("report") or {}).get("metric_names", []):
        for stage in run.get("stages", []):
            if name in (stage.get("scalars") or {}):
                metrics[name] = stage["scalars"][name]
    return metrics


def run_to_json(run: Mapping[str, Any]) -> dict[str, Any]:
    stages = []
    for s in run.get("stages", []):
        duration = (s["ended_at"] - s["started_at"]) if s.get("ended_at") and s.get("started_at") else None
        stages.append({
            "name": s["name"], "status": s["status"], "started_at": iso(s.get("started_at")), "ended_at": iso(s.get("ended_at")),
            "duration_s": None if duration is None else round(duration, 3), "cache_key": s.get("cache_key"),
            "cached_from": s.get("cached_from"), "metrics": {m["name"]: m["value"] for m in s.get("metrics") or []},
            "metric_history": s.get("metrics") or [], "checks": s.get("checks") or [], "outputs": s.get("outputs") or {},
            "scalars": s.get("scalars") or {}, "inputs": s.get("inputs") or [], "artifacts": s.get("artifacts") or [],
            "error": s.get("error"), "worker": s.get("worker") or {}, "attempts": s.get("attempts"),
            "has_notebook": bool(s.get("notebook_sha256")), "notebook_sha256": s.get("notebook_sha256"),
            "reason": _stage_reason(s), "data": _data_deps(s.get("deps") or []),
            "deps": s.get("deps") or [],
        })  # fmt: skip
    ended = run.get("ended_at")
    executor = run.get("executor")
    if isinstance(executor, str) and executor.startswith("{"):  # stored as the executor's describe() JSON
        try:
            executor = json.loads(executor)
        except ValueError:
            pass
    return {
        "id": run["id"], "status": run["status"], "notebook": run.get("notebook"), "kind": run.get("kind"),
        "parent_id": run.get("parent_id"), "study": run.get("study"), "trial": run.get("trial"),
        "started_at": iso(run.get("started_at")), "ended_at": iso(ended),
        "duration_s": round(ended - run["started_at"], 3) if ended else None,
        "params": run.get("params") or {}, "metrics": run_metrics(run), "executor": executor,
        "pipeline_dir": run.get("pipeline_dir"), "pipeline_sha256": run.get("pipeline_sha256"),
        "notebook_sha256": run.get("notebook_sha256"), "git": run.get("git"), "env": run.get("env"),
        "stages": stages,
    }  # fmt: skip


def _stage_reason(stage: Mapping[str, Any]) -> dict[str, str] | None:
    if stage.get("reason"):
        return stage["reason"]
    if stage["status"] == SKIPPED:
        return {"kind": "skipped", "detail": "an upstream stage failed or was skipped"}
    return None  # pending, or recorded by an nbops that kept no reasons


def _data_deps(deps: list[dict]) -> list[dict]:
    """The data a stage read (files, folders, remote objects), for people: path and hash."""
    out = []
    for d in deps:
        if d.get("kind") in ("file", "dir", "remote"):
            out.append({"kind": d["kind"], "path": d.get("path") or d.get("url"),
                        "sha256": d.get("sha256") or d.get("listing_sha256") or d.get("fingerprint")})  # fmt: skip
    return out


def _store_for(path: str | os.PathLike | None, store: str | os.PathLike | None) -> RunStore:
    return open_store(store, path if path is not None else Path.cwd() / "x.ipynb")


def list_runs(path: str | os.PathLike | None = None, *, store=None, limit: int = 50, study: str | None = None) -> list[dict]:
    rs = _store_for(path, store)
    notebook = None
    if path is not None and not Path(path).is_dir():
        notebook = str(Path(path).resolve())
    elif path is not None:
        notebook = str(load_pipeline(path).source_notebook)
    runs = rs.list_runs(notebook=notebook, study=study, limit=limit)
    out = []
    for r in runs:
        j = run_to_json(r)
        out.append({k: j[k] for k in ("id", "status", "started_at", "ended_at", "duration_s", "notebook", "params", "metrics", "kind", "study", "trial")}
                   | {"stages": [{"name": s["name"], "status": s["status"]} for s in j["stages"]]})
    return out


def get_run(run_id: str, *, path=None, store=None) -> dict:
    return run_to_json(_store_for(path, store).get_run(validate_run_id(run_id)))


def stage_notebook(run_id: str, stage: str, *, path=None, store=None) -> Path:
    """The executed notebook of a stage (a file in the run's folder)."""
    rs = _store_for(path, store)
    run = rs.get_run(validate_run_id(run_id))
    validate_stage_name(stage)
    for s in run["stages"]:
        if s["name"] == stage:
            if not s.get("notebook_sha256"):
                raise NotFoundError(f"stage {stage} of run {run_id} has no executed notebook (status {s['status']})", "it did not run")
            target = rs.run_dir(run_id) / "notebooks" / f"{stage}.ipynb"
            if not target.exists():
                rs.objects.materialize(s["notebook_sha256"], target)
            return target
    raise NotFoundError(f"run {run_id} has no stage {stage!r}", f"stages: {', '.join(s['name'] for s in run['stages'])}")


# -- resume, rerun, diff -------------------------------------------------------------------------


def _parent(run_id: str, path, store) -> tuple[RunStore, dict, Prepared]:
    rs = _store_for(path, store)
    parent = rs.get_run(validate_run_id(run_id))
    folder = parent.get("pipeline_dir")
    if not folder or not Path(folder, "pipeline.yaml").exists():
        raise NotFoundError(f"the pipeline of run {run_id} is no longer at {folder}", "run the notebook again instead")
    spec = load_pipeline(folder)
    notebook = parent["notebook"]
    cwd = str(Path(notebook).parent) if Path(notebook).parent.is_dir() else folder
    return rs, parent, Prepared(spec, notebook, cwd, rs)


def _parent_params(parent: dict, overrides: Mapping[str, Any] | None) -> dict:
    params = dict(parent.get("params") or {})
    masked = [k for k, v in params.items() if is_secret(k) and v == "***"]
    overrides = dict(overrides or {})
    missing = [k for k in masked if k not in overrides]
    if missing:
        raise ParameterError(
            f"run {parent['id']} had secret parameters ({', '.join(missing)}) that the store does not keep",
            "pass them again: " + " ".join(f"-p {k}=..." for k in missing),
        )
    params.update(overrides)
    return params


def resume(run_id: str, *, path=None, store=None, executor: str = "local", jobs=None, progress=None, params=None, address=None) -> dict:
    """A new run that reuses the stages that succeeded and continues from the failed one."""
    rs, parent, prep = _parent(run_id, path, store)
    if parent["status"] == SUCCEEDED:
        raise UsageError(f"run {run_id} succeeded: nothing to resume", f"use 'nbops rerun {run_id}' to reproduce it")
    reuse = {s["name"]: s for s in parent["stages"] if s["status"] in DONE_OK and s.get("notebook_sha256")}
    context = RunContext(kind="resume", parent_id=run_id, reuse=reuse, prepared=prep)
    return run(None, _parent_params(parent, params), executor=executor, jobs=jobs, progress=progress, address=address,
               metric_names=(parent.get("report") or {}).get("metric_names"), context=context)  # fmt: skip


def rerun(run_id: str, *, path=None, store=None, executor: str = "local", jobs=None, progress=None, params=None, address=None) -> dict:
    """Run again, same code and parameters, no cache; report what differs."""
    rs, parent, prep = _parent(run_id, path, store)
    new = run(None, _parent_params(parent, params), executor=executor, jobs=jobs, progress=progress, address=address,
              no_cache=True, metric_names=(parent.get("report") or {}).get("metric_names"),
              context=RunContext(kind="rerun", parent_id=run_id, prepared=prep))  # fmt: skip
    new["differences"] = _differences(run_to_json(parent), new)
    return new


def _differences(a: dict, b: dict, tolerance: float = 0.0) -> list[dict]:
    diffs = []
    for name in sorted(set(a["metrics"]) | set(b["metrics"])):
        va, vb = a["metrics"].get(name), b["metrics"].get(name)
        if va != vb and not _close(va, vb, tolerance):
            diffs.append({"kind": "metric", "name": name, "a": va, "b": vb})
    stages_a = {s["name"]: s for s in a["stages"]}
    for s in b["stages"]:
        old = stages_a.get(s["name"])
        if old is None or old["status"] not in DONE_OK or s["status"] not in DONE_OK:
            continue
        for var in sorted(set(old["outputs"]) | set(s["outputs"])):
            ha = old["outputs"].get(var, {}).get("sha256")
            hb = s["outputs"].get(var, {}).get("sha256")
            if ha != hb:
                diffs.append({"kind": "output", "stage": s["name"], "name": var, "a": ha, "b": hb})
    return diffs


def _close(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= tolerance * max(1.0, abs(a), abs(b)) if tolerance else a == b
    return False


def diff_runs(run_a: str, run_b: str, *, path=None, store=None) -> dict:
    """Parameters, metrics, statuses and the code of stages that changed."""
    import difflib

    rs = _store_for(path, store)
    a, b = run_to_json(rs.get_run(validate_run_id(run_a))), run_to_json(rs.get_run(validate_run_id(run_b)))
    params = {k: {"a": a["params"].get(k), "b": b["params"].get(k)} for k in sorted(set(a["params"]) | set(b["params"])) if a["params"].get(k) != b["params"].get(k)}
    metrics = {k: {"a": a["metrics"].get(k), "b": b["metrics"].get(k)} for k in sorted(set(a["metrics"]) | set(b["metrics"])) if a["metrics"].get(k) != b["metrics"].get(k)}
    code = {}
    spec_a = load_pipeline(a["pipeline_dir"]) if a.get("pipeline_dir") and Path(a["pipeline_dir"], "pipeline.yaml").exists() else None
    spec_b = load_pipeline(b["pipeline_dir"]) if b.get("pipeline_dir") and Path(b["pipeline_dir"], "pipeline.yaml").exists() else None
    if spec_a and spec_b:
        names = [s.name for s in spec_b.stages] + [s.name for s in spec_a.stages if s.name not in {x.name for x in spec_b.stages}]
        for name in names:
            sa = next((s for s in spec_a.stages if s.name == name), None)
            sb = next((s for s in spec_b.stages if s.name == name), None)
            if sa and sb and sa.code_sha256 == sb.code_sha256:
                continue
            text_a = _stage_code(spec_a, sa) if sa else []
            text_b = _stage_code(spec_b, sb) if sb else []
            code[name] = "".join(difflib.unified_diff(text_a, text_b, f"{run_a}/{name}", f"{run_b}/{name}"))
    return {"a": run_a, "b": run_b, "params": params, "metrics": metrics, "code": code,
            "status": {"a": a["status"], "b": b["status"]},
            "reasons": _diff_reasons(rs.get_run(run_a), rs.get_run(run_b)), "data": _diff_data(a, b)}  # fmt: skip


def _diff_reasons(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict]:
    """Stage by stage: what differs in B's cache key from A's (why B's cache missed A)."""
    from nbops.plan import explain_change

    old = {s["name"]: s for s in a.get("stages", [])}
    out = []
    for s in b.get("stages", []):
        prev = old.get(s["name"])
        if prev is None:
            out.append({"stage": s["name"], "kind": "code", "detail": f"stage {s['name']!r} is not in run {a['id']}"})
        elif prev.get("key_parts") and s.get("key_parts"):
            reason = explain_change(prev["key_parts"], s["key_parts"])
            if reason is not None:
                out.append({"stage": s["name"], **reason.to_json()})
            elif prev.get("cache_key") == s.get("cache_key") and _data_deps(prev.get("deps") or []) != _data_deps(s.get("deps") or []):
                out.append({"stage": s["name"], "kind": "input", "detail": "the same key, but the data it read differs"})
    return out


def _diff_data(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict]:
    """Data files whose hash differs between the two runs (any stage)."""
    def files(run_: Mapping[str, Any]) -> dict[str, str | None]:
        return {d["path"]: d["sha256"] for s in run_["stages"] for d in s.get("data") or []}

    fa, fb = files(a), files(b)
    return [{"path": p, "a": fa.get(p), "b": fb.get(p)} for p in sorted(set(fa) | set(fb)) if fa.get(p) != fb.get(p)]


def _stage_code(spec: PipelineSpec, stage) -> list[str]:
    import nbformat

    nb = nbformat.read(spec.folder / stage.notebook, as_version=4)
    lines = []
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.get("id") not in ("nbops-parameters", "nbops-inputs", "nbops-outputs"):
            lines += [line + "\n" for line in cell.source.splitlines()] + ["\n"]
    return lines
