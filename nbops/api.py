"""The library calls every surface makes (CLI, server, magics, widgets).

Each function takes plain values, does one job and returns plain data (the
JSON shapes in docs/api.md). Surfaces parse their input, call one of these,
and render the result.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.errors import NbopsError, NotFoundError, ParameterError, UsageError
from nbops.status import DONE_OK, SUCCEEDED

if TYPE_CHECKING:
    from nbops.graph import StageGraph
    from nbops.spec import PipelineSpec
    from nbops.store import RunStore

# Reading runs (nbops.history) and the store (SQLAlchemy, ~0.3 s to import) are imported on
# first use: a fully cached `nbops run` needs neither (plan/cached_run.py).
_LAZY = {
    **dict.fromkeys(
        ("diff_runs", "differences", "get_run", "list_runs", "run_metrics", "run_to_json", "stage_notebook", "validate_stage_name", "why"), "nbops.history"
    ),
    **dict.fromkeys(("open_store", "store_exists", "store_root", "validate_run_id", "RunStore"), "nbops.store"),
    "StageGraph": "nbops.graph",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbops.api' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "graph", "load_graph", "convert", "prepare", "open_executor", "run", "start_run", "resume", "rerun", "Prepared", "RunContext", "plan_run",
]  # fmt: skip
__all__ += ["open_store", "store_root", "validate_run_id"]  # noqa: F822 (from nbops.store, imported on first use: _LAZY)
__all__ += ["list_runs", "get_run", "stage_notebook", "diff_runs", "run_to_json", "run_metrics", "validate_stage_name", "why"]  # noqa: F822 (nbops.history)


# -- graph and convert -----------------------------------------------------------------


def load_graph(path: str | os.PathLike, content: Mapping | None = None) -> StageGraph:
    from nbops.graph import build_graph
    from nbops.notebook import notebook_from_dict, read_notebook

    nb = notebook_from_dict(dict(content), os.fspath(path)) if content is not None else read_notebook(path)
    return build_graph(nb)


def graph(path: str | os.PathLike, content: Mapping | None = None) -> dict:
    """The stage graph JSON; analysis problems are in "errors", not raised."""
    return load_graph(path, content).to_json()


def convert(path: str | os.PathLike, out_dir: str | os.PathLike) -> PipelineSpec:
    from nbops.spec import convert as convert_graph

    return convert_graph(load_graph(path).raise_for_errors(), out_dir, path)


# -- preparing a run -----------------------------------------------------------------------


@dataclass
class Prepared:
    spec: PipelineSpec
    notebook: str  # absolute path of the source notebook
    cwd: str
    store: RunStore


def prepare(target: str | os.PathLike, store: str | os.PathLike | None = None) -> Prepared:
    """A notebook (converted into the store) or a folder made by ``nbops convert``."""
    from nbops.spec import convert as convert_graph
    from nbops.spec import edited_stage_notebooks, load_indexed, load_pipeline, pipeline_key, write_index
    from nbops.store import open_store, store_root

    path = Path(target)
    if path.is_dir():
        spec = load_pipeline(path)
        edited = edited_stage_notebooks(spec)
        if edited:
            raise NbopsError(
                f"{path}: the stage notebook(s) {', '.join(edited)} no longer match pipeline.yaml (edited or damaged after 'nbops convert')",
                f"convert again: nbops convert {spec.source_notebook} -o {path}; to change a stage, edit the source notebook",
            )
        source = spec.source_notebook
        cwd = source.parent if source.parent.is_dir() else path.resolve()
        return Prepared(spec, str(source), str(cwd), open_store(store, source if source.exists() else path))
    if not path.exists():
        raise NotFoundError(f"{path} not found", "pass a notebook (.ipynb) or a folder made by 'nbops convert'")
    absolute = path.resolve()
    try:
        digest = hashlib.sha256(absolute.read_bytes()).hexdigest()
    except OSError:
        digest = None  # read_notebook below says why, with the fix
    # Same notebook bytes at the same place -> the same converted pipeline folder. When it is
    # there (spec.json, see spec/index.py) the analysis is not redone; the store is opened
    # only after a notebook with errors had the chance to fail, so it never creates one.
    spec = load_indexed(store_root(store, path) / "pipelines" / pipeline_key(absolute, digest), digest) if digest else None
    if spec is None:
        g = load_graph(path).raise_for_errors()
        rs = open_store(store, path)
        out = rs.pipelines_dir() / pipeline_key(absolute, g.notebook.sha256)
        spec = load_pipeline(out) if (out / "pipeline.yaml").exists() else None
        if spec is None or edited_stage_notebooks(spec):
            # Generated from the notebook, which is the truth: a damaged or edited copy is made again.
            spec = convert_graph(g, out, absolute)
        write_index(spec)
    else:
        rs = open_store(store, path)
    return Prepared(spec, str(absolute), str(absolute.parent), rs)


def _params(prep: Prepared, params: Mapping[str, Any] | None, params_file: str | None, pairs: list[str] | None) -> dict:
    from nbops.plan import run_params

    return run_params(prep.spec.parameters, prep.notebook, params, params_file, pairs)


# -- running -----------------------------------------------------------------------------


def _executor(name: str, prep: Prepared, jobs: int | None, address: str | None):
    from nbops.execute import get_executor

    return get_executor(name, jobs=jobs, kernel_name=prep.spec.kernel_name, cwd=prep.cwd, address=address, store=prep.store)


class _OnDemand:
    """The local executor, made when the first stage is to run: a fully cached run starts
    no kernel and imports no kernel code (jupyter_client, papermill)."""

    name = "local"
    reads_objects = False  # LocalExecutor's: stages read their inputs from the run folder

    def __init__(self, make: Callable[[], Any]):
        self._make, self._made = make, None

    def _get(self):
        if self._made is None:
            self._made = self._make()
        return self._made

    def warm_up(self, expected: int | None = None) -> None:
        self._get().warm_up(expected=expected)

    def submit(self, task):
        return self._get().submit(task)

    def describe(self) -> dict[str, Any]:
        return self._made.describe() if self._made is not None else {"name": self.name, "kernels": 0}

    def cancel_all(self) -> None:
        if self._made is not None:
            self._made.cancel_all()

    def close(self) -> None:
        if self._made is not None:
            self._made.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    daemon: bool = False,
) -> dict:
    """Run a pipeline to the end; returns the run JSON (check its "status").
    ``daemon``: stage kernels come from templates kept by ``nbops daemon`` (the CLI: a short-lived
    process), set up only when a stage is to run."""
    if context is None and executor == "local" and not no_cache and target is not None:
        from nbops.plan.cached_run import cached_run

        record = cached_run(target, store=store, params=params, params_file=params_file, assignments=assignments,
                            metric_names=metric_names, provenance=_provenance, progress=progress)  # fmt: skip
        if record is not None:  # every stage reused: recorded without a kernel or SQLAlchemy
            from nbops.plan.lite_store import run_json

            return run_json(record)
    from nbops.execute import RunRequest, execute_run
    from nbops.history import run_to_json

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
        if daemon:
            from nbops.execute import forkserver

            forkserver.use_daemon()
        opened = _OnDemand(lambda: _executor(executor, prep, jobs, address)) if executor == "local" else _executor(executor, prep, jobs, address)
        with opened as ex:
            run_id = execute_run(req, ex, progress)
    record = prep.store.get_run(run_id)
    out = run_to_json(record)
    logged = [a for s in record["stages"] for a in s.get("artifacts") or []]
    registered = []
    if any(a.get("model") for a in logged):  # the registry and its imports only when a stage logged a model
        from nbops.models.registry import register_logged

        # Models the stages logged (nbops.log_model) become versions once the run succeeded,
        # so a version's metrics are those of the whole run (evaluate comes after train).
        registered = register_logged(prep.store, record)
    if any(a.get("feature") for a in logged):
        from nbops.features.tables import publish_logged

        out |= publish_logged(prep.store, record)  # tables the stages published (nbops.features.publish): {"features": [...]}
    return out | {"models": registered} if registered else out


def _provenance(kernel_name: str, cwd: str) -> tuple[dict, dict | None]:
    from nbops.execute.provenance import capture_env, git_state

    return capture_env(kernel_name), git_state(cwd)


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


# -- what a run would do -------------------------------------------------------------------


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
    from nbops.spec import convert as convert_graph
    from nbops.store import store_exists

    path = Path(target)
    if store_exists(store, path if path.exists() else Path.cwd()) or path.is_dir():
        prep = prepare(target, store)
        values = _params(prep, params, params_file, assignments)
        planner = ReusePlanner(prep.spec, values, prep.store, notebook=prep.notebook, cwd=prep.cwd, no_cache=no_cache)
        return {"notebook": prep.notebook, "store": prep.store.location, "stages": [d.to_json() for d in planner.dry_run()]}
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


# -- resume, rerun -------------------------------------------------------------------------------


def _parent(run_id: str, path, store) -> tuple[RunStore, dict, Prepared]:
    from nbops.spec import edited_stage_notebooks, load_pipeline
    from nbops.store import open_store, validate_run_id

    rs = open_store(store, path, create=False)
    parent = rs.get_run(validate_run_id(run_id))
    folder = parent.get("pipeline_dir")
    if not folder or not Path(folder, "pipeline.yaml").exists():
        raise NotFoundError(f"the pipeline of run {run_id} is no longer at {folder}", "run the notebook again instead")
    spec = load_pipeline(folder)
    edited = edited_stage_notebooks(spec)
    if edited:
        raise NbopsError(
            f"the pipeline of run {run_id} at {folder} was changed since it ran (stage notebook(s) {', '.join(edited)})",
            "run the notebook again instead: the run cannot be resumed or reproduced from altered code",
        )
    notebook = parent["notebook"]
    cwd = str(Path(notebook).parent) if Path(notebook).parent.is_dir() else folder
    return rs, parent, Prepared(spec, notebook, cwd, rs)


def _parent_params(parent: dict, overrides: Mapping[str, Any] | None) -> dict:
    from nbops.plan import is_secret

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


def resume(run_id: str, *, path=None, store=None, executor: str = "local", jobs=None, progress=None, params=None, address=None,
           on_created: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """A new run that reuses the stages that succeeded and continues from the failed one.
    ``on_created(new_run_id)`` as soon as the new run is recorded (a scheduler's firing notes it)."""
    rs, parent, prep = _parent(run_id, path, store)
    if parent["status"] == SUCCEEDED:
        raise UsageError(f"run {run_id} succeeded: nothing to resume", f"use 'nbops rerun {run_id}' to reproduce it")
    reuse = {s["name"]: s for s in parent["stages"] if s["status"] in DONE_OK and s.get("notebook_sha256")}
    context = RunContext(kind="resume", parent_id=run_id, reuse=reuse, prepared=prep, on_created=on_created)
    return run(None, _parent_params(parent, params), executor=executor, jobs=jobs, progress=progress, address=address,
               metric_names=(parent.get("report") or {}).get("metric_names"), context=context)  # fmt: skip


def rerun(run_id: str, *, path=None, store=None, executor: str = "local", jobs=None, progress=None, params=None, address=None) -> dict:
    """Run again, same code and parameters, no cache; report what differs."""
    rs, parent, prep = _parent(run_id, path, store)
    new = run(None, _parent_params(parent, params), executor=executor, jobs=jobs, progress=progress, address=address,
              no_cache=True, metric_names=(parent.get("report") or {}).get("metric_names"),
              context=RunContext(kind="rerun", parent_id=run_id, prepared=prep))  # fmt: skip
    from nbops.history import differences, run_to_json

    new["differences"] = differences(run_to_json(parent), new)
    return new
