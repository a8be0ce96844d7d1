"""Continuous training: after a scheduled run, promote its model when it earned it, and
notice when a run got worse than the one before.

A schedule's ``promote`` option::

    {"model": "churn", "alias": "production", "require": ["accuracy>=0.8"], "require_better_than": "production"}

The run registered its model already (a stage called ``nbops.log_model(model,
"churn")``; ``nbops.api.run`` registers logged models once the run succeeded).
:func:`promote_after` finds that version, and moves the alias when the run
succeeded, its checks all passed, and the gates of ``nbops.models`` hold
(the same gates as ``nbops models promote --require --require-better-than``).
A first model (no version holds the alias yet) needs only the ``require`` gates.
Every outcome is a ``promote`` event of the schedule, so its history says why a
model was not promoted. Nothing here raises for a refusal.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from nbops.errors import NbopsError, NotFoundError
from nbops.history import run_metrics
from nbops.models.registry import GateError, ModelRef, check_gates, parse_gate, resolve
from nbops.store.registry import Registry

__all__ = ["promote_after", "regressions", "metric_goals"]

log = logging.getLogger("nbops.automate.promote")

DEFAULT_ALIAS = "production"


def _run_record(ss, run: Mapping[str, Any]) -> dict[str, Any]:
    """The stored record of a run (stages with checks, artifacts and metric goals), whether
    the caller holds the run JSON of ``nbops.api.run`` or the record itself."""
    return ss.store.get_run(run["id"])


def _failed_checks(record: Mapping[str, Any]) -> list[str]:
    """Checks that did not pass, warn-mode ones included: a warning did not fail the run,
    but a model behind one is not one to promote without a person looking."""
    return [f"{s['name']}/{c.get('name')}" for s in record.get("stages") or [] for c in s.get("checks") or [] if not c.get("passed")]


def _version_of_run(reg: Registry, record: Mapping[str, Any], model: str) -> dict[str, Any] | None:
    """The version of ``model`` the run made; for a run that reused the training stage from
    the cache (nothing new was registered), the version that holds the bytes it logged."""
    made = [v for v in reg.versions_of_run(record["id"]) if v["name"] == model]
    if made:
        return max(made, key=lambda v: v["version"])
    logged = {a["sha256"] for s in record.get("stages") or [] for a in s.get("artifacts") or [] if a.get("model") == model and a.get("sha256")}
    same = [v for v in reg.versions(model) if v["sha256"] in logged] if logged and reg.has_model(model) else []
    return max(same, key=lambda v: v["version"]) if same else None


def _verdicts(rs, reg: Registry, v: dict, require: list[str], better_than: str | None) -> list[dict[str, Any]]:
    """Each gate on its own, for the record of a refusal (check_gates stops at the verdict)."""
    out: list[dict[str, Any]] = []
    for gate in require:
        try:
            out += check_gates(rs, reg, v, [gate], None)
        except GateError as exc:
            out.append({"gate": gate, "passed": False, "message": exc.message.removeprefix("promotion refused: ")})
    if better_than is not None:
        # As check_gates does: "better than" compares the metrics the require gates name, if any.
        named = [parse_gate(g)[0] for g in require]
        sub = {**v, "metrics": {k: x for k, x in v["metrics"].items() if k in named}} if named else v
        try:
            out += check_gates(rs, reg, sub, [], better_than)
        except GateError as exc:
            out.append({"gate": f"better than {better_than}", "passed": False, "message": exc.message.removeprefix("promotion refused: ")})
    return out


def promote_after(ss, schedule: Mapping[str, Any], key: str | None, run: Mapping[str, Any]) -> dict[str, Any]:
    """Promote the model of a scheduled run when it earned it; the outcome, recorded as a
    ``promote`` event (promoted, refused or error): ``{"model", "version", "alias",
    "promoted", "reason", "gates", "from"}``. Never raises for a refusal."""
    cfg = dict(schedule.get("promote") or {})
    name = schedule.get("name") or "?"
    model, alias = cfg.get("model"), cfg.get("alias") or DEFAULT_ALIAS
    result: dict[str, Any] = {"model": model, "version": None, "alias": alias, "promoted": False, "reason": "", "gates": [], "from": None}
    if not model:
        return result | {"reason": "the schedule promotes no model"}
    if not (run or {}).get("id"):
        result["reason"] = "no run to promote a model from (the firing made none)"
        _record(ss, name, key, "error", result)
        return result
    status = "refused"
    try:
        record = _run_record(ss, run)
        require, better_than = list(cfg.get("require") or []), cfg.get("require_better_than")
        reg = Registry(ss.store)
        v = _version_of_run(reg, record, model) if record["status"] == "succeeded" else None
        failed = _failed_checks(record)
        if record["status"] != "succeeded":
            result["reason"] = f"run {record['id']} {record['status']}: only a succeeded run's model is promoted"
        elif v is None:
            status = "error"
            result["reason"] = f"run {record['id']} logged no model {model!r}: call nbops.log_model(model, {model!r}) in a stage of {record.get('notebook')}"
        else:
            v = resolve(ModelRef(model, version=v["version"]), registry=reg)
            result["version"] = v["version"]
            holder = reg.alias(model, alias)
            if failed:
                result["gates"] = _verdicts(ss.store, reg, v, require, better_than)
                result["reason"] = f"v{v['version']} not promoted: check(s) of run {record['id']} did not pass: {', '.join(failed)}"
            elif holder == v["version"]:
                result["reason"] = f"v{v['version']} holds {alias} already (run {record['id']} made no new model: its training was reused)"
            else:
                try:
                    result["gates"] = check_gates(ss.store, reg, v, require, better_than)
                except GateError as exc:
                    result["gates"] = getattr(exc, "gates", None) or _verdicts(ss.store, reg, v, require, better_than)
                    result["reason"] = f"v{v['version']} not promoted to {alias}: {exc.message.removeprefix('promotion refused: ')}"
                else:
                    message = f"schedule {name}" + (f", firing {key}" if key else "") + f", run {record['id']}"
                    result["from"] = reg.move_alias(model, alias, v["version"], action="promote", message=message, gates=result["gates"])
                    result["promoted"], status = True, "promoted"
                    was = f" (was v{result['from']})" if result["from"] is not None else " (the first to hold it)"
                    result["reason"] = f"v{v['version']} promoted to {alias}{was}: " + _passed_text(result["gates"])
    except NbopsError as exc:  # a gate that cannot be read, a run pruned from the store, a store down
        status, result["reason"] = "error", exc.message
    except Exception as exc:  # noqa: BLE001 - a scheduler must go on to the next firing
        log.exception("schedule %s: promotion after run %s failed", name, run.get("id"))
        status, result["reason"] = "error", f"{type(exc).__name__}: {exc}"
    _record(ss, name, key, status, result)
    return result


def _passed_text(gates: list[dict]) -> str:
    parts = []
    for g in gates:
        if "other" in g:
            parts.append(f"{g['metric']} {g['value']} vs {g['other']} (v{g['other_version']})")
        elif "value" in g:
            parts.append(f"{g['gate']} ({g['metric']}={g['value']})")
        else:
            parts.append(g.get("note") or g["gate"])
    return "; ".join(parts) or "no gates"


def _record(ss, name: str, key: str | None, status: str, result: dict) -> None:
    try:
        ss.add_event(name, "promote", status, key=key, target=f"{result['model']}@{result['alias']}", message=result["reason"], detail=result)
    except Exception as exc:  # noqa: BLE001 - the alias moved (or not) whatever the record does
        log.warning("schedule %s: could not record the promotion outcome: %s", name, exc)


# -- regressions -----------------------------------------------------------------------
def metric_goals(record: Mapping[str, Any]) -> dict[str, str]:
    """name -> "max" | "min" as the stages declared it (``log_metric(..., goal=)``); a metric
    without a goal is better higher, as promotion gates read it."""
    goals: dict[str, str] = {}
    for s in record.get("stages") or []:
        for m in s.get("metrics") or []:
            if m.get("goal") in ("min", "max"):
                goals[m["name"]] = m["goal"]
    return goals


def _previous_run(ss, name: str, record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run of the newest succeeded firing of ``name`` before this run (not this one)."""
    for firing in ss.firings(name, status=("succeeded",), limit=50):
        run_id = firing.get("run_id")
        if not run_id or run_id == record["id"]:
            continue
        try:
            previous = ss.store.get_run(run_id)
        except NotFoundError:  # pruned: look further back
            continue
        if previous["started_at"] < record["started_at"] and previous["status"] == "succeeded":
            return previous
    return None


def regressions(ss, schedule: Mapping[str, Any], run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Metrics of ``run`` worse than those of the previous succeeded firing's run of the
    same schedule: ``[{"metric", "previous", "now", "run", "goal"}]`` (``run``: the previous run)."""
    try:
        record = _run_record(ss, run)
    except (NbopsError, KeyError):
        return []
    previous = _previous_run(ss, schedule.get("name") or "", record)
    if previous is None:
        return []
    now, before = run_metrics(record), run_metrics(previous)
    goals = metric_goals(previous) | metric_goals(record)
    out = []
    for metric in sorted(now):
        a, b = before.get(metric), now[metric]
        if not (_number(a) and _number(b)):
            continue
        goal = goals.get(metric, "max")
        if (b < a) if goal == "max" else (b > a):
            out.append({"metric": metric, "previous": a, "now": b, "run": previous["id"], "goal": goal})
    return out


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x  # NaN is no evidence either way
