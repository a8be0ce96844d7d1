"""The record of runs, read for people: run JSON, listing, why a stage ran, comparing two runs.

What ``nbops runs ls|show|diff``, ``nbops why``, the server's run routes and
the widgets show. Everything here reads the store; nothing runs or writes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbops.errors import NotFoundError, UsageError
from nbops.notebook import STAGE_NAME_RE
from nbops.spec import PipelineSpec, load_pipeline
from nbops.status import DONE_OK, SKIPPED
from nbops.store import RunStore, iso, open_store, validate_run_id

__all__ = [
    "run_metrics", "run_to_json", "list_runs", "get_run", "stage_notebook", "why", "diff_runs", "differences",
    "validate_stage_name",
]  # fmt: skip


def validate_stage_name(name: str) -> str:
    if not isinstance(name, str) or not STAGE_NAME_RE.fullmatch(name):
        raise UsageError(f"{name!r} is not a stage name", "stage names are identifiers: letters, digits and _")
    return name


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
        "user": run.get("user"), "host": run.get("host"), "trigger": run.get("trigger"),
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
    """The existing store (reads never create one); NotFoundError "no runs yet" when there is none."""
    return open_store(store, path, create=False)


def _store_of_run(run_id: str, path, store) -> RunStore:
    """The store that should hold ``run_id``; with no store at all, the error names the run too."""
    try:
        return _store_for(path, store)
    except NotFoundError as exc:
        raise NotFoundError(f"no run {run_id}: {exc.message}", exc.fix) from None


def list_runs(path: str | os.PathLike | None = None, *, store=None, limit: int = 50, study: str | None = None, user: str | None = None) -> list[dict]:
    """Newest first, of ``path``'s notebook when given (and by ``user`` when given); each row names its ``store``."""
    try:
        rs = _store_for(path, store)
    except NotFoundError:
        return []  # no store yet: no runs, and nothing is made by asking
    notebook = None
    if path is not None and not Path(path).is_dir():
        notebook = str(Path(path).resolve())
    elif path is not None:
        notebook = str(load_pipeline(path).source_notebook)
    runs = rs.list_runs(notebook=notebook, study=study, user=user, limit=limit)
    out = []
    for r in runs:
        j = run_to_json(r)
        out.append({k: j[k] for k in _LISTED} | {"store": rs.location, "stages": [{"name": s["name"], "status": s["status"]} for s in j["stages"]]})
    return out


_LISTED = ("id", "status", "started_at", "ended_at", "duration_s", "notebook", "params", "metrics", "kind", "study", "trial", "user", "host")


def get_run(run_id: str, *, path=None, store=None) -> dict:
    """One run as JSON, with the ``store`` it lives in (its location, password masked)."""
    rs = _store_of_run(run_id, path, store)
    return run_to_json(rs.get_run(validate_run_id(run_id))) | {"store": rs.location}


def stage_notebook(run_id: str, stage: str, *, path=None, store=None) -> Path:
    """The executed notebook of a stage (a file in the run's folder)."""
    rs = _store_of_run(run_id, path, store)
    run = rs.get_run(validate_run_id(run_id))
    validate_stage_name(stage)
    for s in run["stages"]:
        if s["name"] == stage:
            if not s.get("notebook_sha256"):
                raise NotFoundError(f"stage {stage} of run {run_id} has no executed notebook (status {s['status']})", "it did not run")
            target = rs.run_dir(run_id) / "notebooks" / f"{stage}.ipynb"
            if not target.exists():
                rs.objects.materialize(s["notebook_sha256"], target)
            # Served to the lab and printed by 'nbops open': a symlink planted in the run
            # folder must not lead a reader to a file outside the store.
            resolved = target.resolve()
            if rs.root not in resolved.parents:
                raise NotFoundError(
                    f"the executed notebook of stage {stage} in run {run_id} leads outside the store ({resolved})",
                    f"delete {target} and open it again: nbops rewrites it from the store",
                )
            return resolved
    raise NotFoundError(f"run {run_id} has no stage {stage!r}", f"stages: {', '.join(s['name'] for s in run['stages'])}")


def why(run_id: str, stage: str | None = None, *, path=None, store=None) -> dict:
    """Why each stage of a run ran or was reused (the reason its record keeps)."""
    run_ = get_run(run_id, path=path, store=store)
    stages = [{"name": s["name"], "status": s["status"], "reason": s["reason"]} for s in run_["stages"]]
    if stage is not None:
        validate_stage_name(stage)
        stages = [s for s in stages if s["name"] == stage]
        if not stages:
            raise NotFoundError(f"run {run_id} has no stage {stage!r}", f"stages: {', '.join(s['name'] for s in run_['stages'])}")
    return {"run_id": run_id, "notebook": run_["notebook"], "store": run_["store"], "stages": stages}


def differences(a: dict, b: dict, tolerance: float = 0.0) -> list[dict]:
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

    rs = _store_of_run(run_a, path, store)
    a, b = run_to_json(rs.get_run(validate_run_id(run_a))), run_to_json(rs.get_run(validate_run_id(run_b)))
    params = {
        k: {"a": a["params"].get(k), "b": b["params"].get(k)} for k in sorted(set(a["params"]) | set(b["params"])) if a["params"].get(k) != b["params"].get(k)
    }
    metrics = {
        k: {"a": a["metrics"].get(k), "b": b["metrics"].get(k)}
        for k in sorted(set(a["metrics"]) | set(b["metrics"]))
        if a["metrics"].get(k) != b["metrics"].get(k)
    }
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
    return {"a": run_a, "b": run_b, "store": rs.location, "params": params, "metrics": metrics, "code": code,
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
