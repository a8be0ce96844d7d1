"""The fully cached re-run: decided and recorded without kernels, SQLAlchemy or analysis.

``nbops run NB`` again on an unchanged notebook reuses every stage. What that
takes is small: hash the notebook, find its converted pipeline (``spec.json``,
see ``spec/index.py``), compute each stage's key, one query per stage for an
execution with that key, re-check its deps (files and modules by stat and the
hash memo, packages from the cached listing) and write the run. ``api.run``
tries this first; every decision is ``ReusePlanner.decide``'s own, on a store
read with ``sqlite3`` (``lite_store.py``). Whenever it cannot be sure it returns
None and the ordinary path decides and records: a team store or objects URL,
a store needing a migration, a notebook not converted yet (or edited), a stage
that would run, a dep on a feature table, a model a reused stage logged that the
registry does not hold yet.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nbops.plan.params import mask_secrets, run_params
from nbops.plan.reuse import REUSE, ReusePlanner
from nbops.spec import PipelineSpec, load_indexed
from nbops.spec.index import pipeline_key
from nbops.status import SUCCEEDED

__all__ = ["cached_run", "run_fields", "EXECUTOR_UNUSED"]

# What the run records as its executor when no stage needed one.
EXECUTOR_UNUSED = {"name": "local", "kernels": 0}

Provenance = Callable[[str, str], tuple[dict, dict | None]]  # (kernel name, cwd) -> (env, git)


def run_fields(
    spec: PipelineSpec, notebook: str, params: Mapping[str, Any], *, env: dict, git: dict | None, executor: dict,
    kind: str = "run", parent_id: str | None = None, study: str | None = None, trial: int | None = None,
    metric_names: list[str] | None = None, no_cache: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """The run record's fields (the scheduler's and the cached run's: one definition)."""
    return dict(
        notebook=notebook, pipeline_dir=str(spec.folder),
        pipeline_sha256=hashlib.sha256("".join(s.code_sha256 for s in spec.stages).encode()).hexdigest(),
        notebook_sha256=spec.source_sha256, params=mask_secrets(params), env=env, git=git, executor=json.dumps(executor),
        kind=kind, parent_id=parent_id, study=study, trial=trial, report={"metric_names": list(metric_names or []), "no_cache": no_cache},
    )  # fmt: skip


def cached_run(
    target: str | os.PathLike,
    *,
    store: str | os.PathLike | None,
    params: Mapping[str, Any] | None,
    params_file: str | None,
    assignments: list[str] | None,
    metric_names: list[str] | None,
    provenance: Provenance,
    progress: Callable | None = None,
) -> dict[str, Any] | None:
    """The run JSON of a run whose every stage was reused, recorded; None when a stage
    would run or this path cannot tell (the caller then runs the ordinary way).
    Bad parameters raise, as they would there."""
    from nbops.plan.lite_store import Fallback, open_lite

    path = Path(target)
    if not path.is_file():
        return None
    try:
        lite = open_lite(store, path)
    except Fallback:
        return None
    try:
        return _run(lite, path.resolve(), params, params_file, assignments, metric_names, provenance, progress or (lambda *a: None))
    except Fallback:
        return None
    finally:
        lite.close()


def _run(lite, notebook: Path, params, params_file, assignments, metric_names, provenance: Provenance, progress) -> dict[str, Any] | None:
    from nbops.plan.fingerprint import unseen_note
    from nbops.plan.lite_store import Fallback, new_run_id

    started = time.time()
    digest = hashlib.sha256(notebook.read_bytes()).hexdigest()
    spec = load_indexed(lite.root / "pipelines" / pipeline_key(notebook, digest), digest)
    if spec is None:
        return None  # not converted yet, or its pipeline folder was damaged: prepare() makes it
    values = run_params(spec.parameters, str(notebook), params, params_file, assignments)
    planner = ReusePlanner(spec, values, lite, notebook=str(notebook), cwd=str(notebook.parent))
    decisions, outputs = [], {}
    for stage in spec.stages:
        inputs = {var: outputs[producer][var]["sha256"] for var, producer in stage.inputs.items()}
        decision = planner.decide(stage, inputs)
        if decision.action != REUSE:
            return None
        for logged in decision.record.get("artifacts") or []:
            if logged.get("model") and logged.get("sha256") and not lite.model_known(logged["model"], logged["sha256"]):
                raise Fallback("a reused stage logged a model the registry does not hold yet")
        outputs[stage.name] = decision.record["outputs"]
        decisions.append(decision)

    env, git = provenance(spec.kernel_name, str(notebook.parent))
    fields = run_fields(spec, str(notebook), values, env=env, git=git, executor=EXECUTOR_UNUSED, metric_names=metric_names)
    now = time.time()
    stages = []
    for position, decision in enumerate(decisions):
        stages.append({"name": decision.stage, "position": position, **decision.reused_fields(now)})
    run_id = new_run_id()
    record = lite.record_run(run_id, {**fields, "status": SUCCEEDED, "started_at": started, "ended_at": time.time()}, stages)
    for decision in decisions:
        progress("cached", decision.stage, {"from": decision.record["run_id"], "reason": decision.reason.to_json()})
        note = unseen_note(decision.record.get("deps") or [], reused=True)
        if note:
            progress("note", decision.stage, {"message": note})
    progress("run_done", "", {"run_id": run_id, "status": SUCCEEDED})
    return record
