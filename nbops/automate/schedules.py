"""Schedules as the library sees them: add (validated), list, show, pause, resume, remove, run now.

A schedule is a row in the store (``nbops.store.schedules``), so everyone on a
team store sees and shares it; the scheduler (``nbops.automate.scheduler``)
reads the same rows. Everything here checks its input before it writes: a
schedule names a notebook that exists and analyses without errors (the errors
``nbops convert`` would give), parameters the notebook declares (kept as data,
never evaluated), notification targets that parse, and a gate that reads.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from nbops.automate import triggers as trig
from nbops.errors import NbopsError, NotFoundError, UsageError
from nbops.plan import mask_secrets
from nbops.store import current_user, iso, open_store, store_exists
from nbops.store.config import mask_url
from nbops.store.schedules import ScheduleStore

__all__ = [
    "open_schedules", "add", "ls", "show", "pause", "resume", "remove", "run_now", "check_notebook", "schedule_to_json",
    "DEFAULT_OPTIONS", "SCHEDULER_FRESH_S", "default_name", "validate_schedule_name",
]  # fmt: skip

DEFAULT_OPTIONS = {"max_concurrent": 1, "overlap": "queue", "catch_up": None}
OVERLAP = ("queue", "skip")
CATCH_UP = (None, "once", "all", "none")
# A scheduler whose heartbeat is older than this is taken for gone (run-now then runs here).
SCHEDULER_FRESH_S = 30.0
# The lease of a firing run in this process by run-now (renewed by run_firing while it runs).
MANUAL_LEASE_S = 60.0
# The promotion gate rule of the model registry (METRIC OP NUMBER), checked when the schedule is made.


def open_schedules(store: str | os.PathLike | None = None, near: str | os.PathLike | None = None) -> ScheduleStore:
    """The schedules of the store found as every surface finds it (``--store``, $NBOPS_STORE, nbops.toml, ``.nbops/`` beside ``near``)."""
    return ScheduleStore(open_store(store, near))


def _reading(store, near) -> ScheduleStore | None:
    """The schedules for a read, or None where no store exists yet (nothing is created)."""
    if not store_exists(store, near):
        return None
    return ScheduleStore(open_store(store, near, create=False))


# -- add -----------------------------------------------------------------------------


def validate_schedule_name(name: str) -> str:
    if not isinstance(name, str) or not trig.NAME_RE.match(name):
        raise UsageError(f"invalid schedule name {name!r}", "use lowercase letters, digits, '_' and '-', starting with a letter or digit (e.g. churn-nightly)")
    return name


def default_name(notebook: str | os.PathLike, trigger: dict) -> str:
    """``churn-cron``, ``churn-every``, ``churn-on-change``, ``churn-after`` from the notebook's stem."""
    stem = re.sub(r"[^a-z0-9_-]+", "-", Path(notebook).stem.lower()).strip("-_") or "notebook"
    return f"{stem}-{trigger['kind'].replace('_', '-')}"


def add(
    notebook: str | os.PathLike,
    trigger: dict,
    *,
    name: str | None = None,
    params: dict[str, Any] | None = None,
    params_file: str | os.PathLike | None = None,
    executor: str = "local",
    notify: list[str] | None = None,
    notify_on: list[str] | None = None,
    promote: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    store: str | os.PathLike | None = None,
) -> dict:
    """Make a schedule; returns it as ``show`` does (with ``warnings``, e.g. a glob that matches nothing)."""
    path = Path(notebook)
    if not path.is_file():
        raise NotFoundError(f"notebook {path} not found", "pass the path of a notebook (.ipynb) that exists")
    path = path.resolve()
    graph = _analysed(path)
    trigger = dict(trigger)
    if trigger.get("kind") not in trig.TRIGGER_KINDS:
        raise UsageError(f"unknown trigger {trigger!r}", "make one with nbops.automate.triggers.make_trigger")
    name = validate_schedule_name(name) if name is not None else default_name(path, trigger)
    params = _params(graph, path, params or {}, params_file)
    _no_secrets(params)
    promote = _promote(promote)
    options = _options(options)
    notify, notify_on = _notify(notify, notify_on)
    warnings: list[str] = []
    if trigger["kind"] == "on_change":
        trigger, warnings = _watch(trigger, path, params)
    ss = open_schedules(store, path)
    if trigger["kind"] == "after":
        if trigger["schedule"] == name:
            raise UsageError(f"schedule {name} cannot run after itself", "name another schedule with --after")
        if ss.get(trigger["schedule"]) is None:
            raise NotFoundError(f"--after {trigger['schedule']}: no such schedule", _names_fix(ss))
    fields = dict(notebook=str(path), trigger=trigger, params=params, params_file=str(Path(params_file).resolve()) if params_file else None,
                  executor=executor, notify=notify, notify_on=notify_on, promote=promote, options=options, paused=0, state={})  # fmt: skip
    if not ss.add(name, **fields):
        raise UsageError(f"a schedule named {name} exists already", f"pass another --name, or remove it first: nbops schedule rm {name}")
    out = show(name, ss=ss)
    return out | {"warnings": warnings}


def _analysed(path: Path):
    """The notebook's graph; its analysis errors raised as ``nbops convert`` raises them."""
    from nbops.api import load_graph

    return load_graph(path).raise_for_errors()


def _params(graph, path: Path, params: dict[str, Any], params_file) -> dict[str, Any]:
    from nbops.plan import load_params_file, resolve_params
    from nbops.spec.pipeline import ParamSpec

    if not isinstance(params, dict):
        raise UsageError(f"parameters must be a mapping of name to value, got {type(params).__name__}", "e.g. {'n_estimators': 200}")
    try:
        json.dumps(params, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"parameters must be plain data (JSON/YAML values): {exc}", "pass numbers, strings, lists and mappings") from None
    given = dict(load_params_file(params_file)) if params_file else {}
    given.update(params)
    # Checked against the notebook now, so a typo fails here rather than at 03:00.
    resolve_params({p.name: ParamSpec(p.default, p.type) for p in graph.parameters}, given, str(path))
    return params


def _no_secrets(params: dict[str, Any]) -> None:
    from nbops.plan import is_secret

    secret = sorted(k for k in params if is_secret(k))
    if secret:
        # The schedule is a row of a (maybe shared) store: a secret's value must not be kept there.
        raise UsageError(
            f"parameter{'s' if len(secret) > 1 else ''} {', '.join(secret)} look{'' if len(secret) > 1 else 's'} secret and would be stored in the schedule",
            "put it in a parameters file (-f secrets.yaml, read at each firing, never stored)",
        )


def _promote(promote: dict[str, Any] | None) -> dict[str, Any] | None:
    if not promote:
        return None
    from nbops.models.registry import parse_gate, validate_alias, validate_name

    unknown = set(promote) - {"model", "alias", "require", "require_better_than"}
    if unknown:
        raise UsageError(f"unknown promotion settings {', '.join(sorted(unknown))}", "use model, alias, require, require_better_than")
    model = validate_name(promote.get("model"))
    alias = validate_alias(promote.get("alias") or "production")
    require = list(promote.get("require") or [])
    for cond in require:
        parse_gate(cond)
    better = promote.get("require_better_than")
    if better is not None:
        validate_alias(better)
    return {"model": model, "alias": alias, "require": require, "require_better_than": better}


def _options(options: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(DEFAULT_OPTIONS)
    for key, value in (options or {}).items():
        if key not in out:
            raise UsageError(f"unknown schedule option {key!r}", f"options are {', '.join(DEFAULT_OPTIONS)}")
        if value is not None or key == "catch_up":
            out[key] = value
    mc = out["max_concurrent"]
    if isinstance(mc, bool) or not isinstance(mc, int) or mc < 1:
        raise UsageError(f"max_concurrent must be a whole number of 1 or more, got {mc!r}", "e.g. --max-concurrent 1")
    if out["overlap"] not in OVERLAP:
        raise UsageError(f"overlap must be queue or skip, got {out['overlap']!r}", "--overlap queue (wait for a free slot) or --overlap skip")
    if out["catch_up"] not in CATCH_UP:
        raise UsageError(f"catch_up must be once, all or none, got {out['catch_up']!r}", "leave it unset to follow the scheduler's --catch-up")
    return out


def _notify(notify: list[str] | None, notify_on: list[str] | None) -> tuple[list[str], list[str]]:
    try:
        from nbops.automate.notify import DEFAULT_NOTIFY_ON, parse_events, parse_target
    except ImportError:  # notifications not installed in this build: keep the targets as given
        return [str(t) for t in notify or []], [str(e) for e in notify_on or []]
    targets = [parse_target(t) for t in notify or []]
    events = parse_events(notify_on) if notify_on else list(DEFAULT_NOTIFY_ON)
    return targets, events


def _watch(trigger: dict, notebook: Path, params: dict[str, Any]) -> tuple[dict, list[str]]:
    """``--on-change inputs`` made concrete; patterns that match nothing now become warnings."""
    from nbops.automate import watch

    if trigger["watch"] == ["inputs"]:
        found = watch.notebook_inputs(notebook, params)
        if not found:
            raise UsageError(
                f"--on-change inputs: {notebook.name} names no input file",
                "wrap the reads in nbops.input('data/x.csv'), or pass the files or globs to --on-change",
            )
        trigger = {**trigger, "watch": found, "from_inputs": True}
    return trigger, watch.missing(trigger, base=str(notebook.parent))


def _names_fix(ss: ScheduleStore) -> str:
    names = [s["name"] for s in ss.all()]
    return f"schedules here: {', '.join(names)}" if names else "there are no schedules yet: nbops schedule add NOTEBOOK ..."


# -- reading -------------------------------------------------------------------------


def _get(ss: ScheduleStore | None, name: str) -> dict:
    validate_schedule_name(name)
    row = ss.get(name) if ss is not None else None
    if row is None:
        raise NotFoundError(f"no schedule named {name}", _names_fix(ss) if ss is not None else "there are no schedules yet: nbops schedule add NOTEBOOK ...")
    return row


def _mask_target(target: str) -> str:
    try:
        from nbops.automate.notify import mask_target
    except ImportError:
        return mask_url(target)
    return mask_target(target)


def schedule_to_json(row: dict, now: float | None = None, n: int = 1) -> dict:
    """A schedule for people and panels: targets masked, times ISO, ``next`` due times in its zone."""
    now = time.time() if now is None else now
    t = row["trigger"]
    tz = t.get("tz") if t.get("kind") == "cron" else None
    upcoming = [] if row.get("paused") or row.get("broken") else trig.next_times(t, now, n=n, anchor=row.get("created_at"))
    return {
        "name": row["name"],
        "notebook": row["notebook"],
        "trigger": t,
        "describe": trig.describe(t),
        "params": mask_secrets(row.get("params") or {}),
        "params_file": row.get("params_file"),
        "executor": row.get("executor") or "local",
        "notify": [_mask_target(x) for x in row.get("notify") or []],
        "notify_on": row.get("notify_on") or [],
        "promote": row.get("promote"),
        "options": {**DEFAULT_OPTIONS, **(row.get("options") or {})},
        "paused": bool(row.get("paused")),
        "broken": row.get("broken"),
        "status": "broken" if row.get("broken") else "paused" if row.get("paused") else "active",
        "next": [trig.iso(x, tz) for x in upcoming],
        "created_at": iso(row.get("created_at")),
        "created_by": row.get("created_by"),
        "updated_at": iso(row.get("updated_at")),
    }


def _firing_json(f: dict) -> dict:
    return {
        "key": f["key"], "status": f["status"], "due_at": iso(f["due_at"]), "run_id": f.get("run_id"), "trigger": f.get("trigger") or {},
        "reason": f.get("reason"), "attempts": f.get("attempts", 0), "started_at": iso(f.get("started_at")), "ended_at": iso(f.get("ended_at")),
        "outcome": f.get("outcome") or {},
    }  # fmt: skip


def _event_json(e: dict) -> dict:
    return {"at": iso(e["at"]), "kind": e["kind"], "status": e["status"], "key": e.get("key"), "target": e.get("target"),
            "message": e.get("message"), "detail": e.get("detail") or {}}  # fmt: skip


def ls(store: str | os.PathLike | None = None, near: str | os.PathLike | None = None, *, now: float | None = None) -> list[dict]:
    """Every schedule, by name, with its next due time and last firing."""
    ss = _reading(store, near)
    if ss is None:
        return []
    out = []
    for row in ss.all():
        last = ss.firings(row["name"], limit=1)
        out.append(schedule_to_json(row, now) | {"last": _firing_json(last[0]) if last else None})
    return out


def show(name: str, store: str | os.PathLike | None = None, near: str | os.PathLike | None = None, *, ss: ScheduleStore | None = None,
         now: float | None = None, limit: int = 20) -> dict:  # fmt: skip
    """One schedule: its settings, the next 5 due times, the last firings (status, run, trigger, reason) and events."""
    ss = ss or _reading(store, near)
    row = _get(ss, name)
    return {
        "schedule": schedule_to_json(row, now, n=5),
        "firings": [_firing_json(f) for f in ss.firings(name, limit=limit)],
        "events": [_event_json(e) for e in ss.events(name, limit=limit)],
    }


# -- changing ------------------------------------------------------------------------


def _set(name: str, store, near, **fields) -> tuple[ScheduleStore, dict]:
    ss = _reading(store, near)
    _get(ss, name)
    ss.update(name, **fields)
    return ss, _get(ss, name)


def pause(name: str, store: str | os.PathLike | None = None, near: str | os.PathLike | None = None) -> dict:
    """Stop firing: due times pass (resume does not catch them up), queued firings wait, runs already going finish."""
    ss, row = _set(name, store, near, paused=1)
    ss.add_event(name, "paused", "ok", message=f"paused by {current_user()}")
    return schedule_to_json(row)


def resume(name: str, store: str | os.PathLike | None = None, near: str | os.PathLike | None = None) -> dict:
    """Fire again from now on; a schedule marked broken is checked again and cleared when its notebook is fine."""
    ss = _reading(store, near)
    row = _get(ss, name)
    reason = check_notebook(row)
    fields: dict[str, Any] = {"paused": 0, "broken": reason}
    if row.get("paused") and row["trigger"].get("kind") in ("cron", "every"):
        # Times that came due while paused are not caught up: the scheduler plans from now.
        fields["state"] = {**(row.get("state") or {}), "planned_until": time.time()}
    ss.update(name, **fields)
    ss.add_event(name, "resumed", "ok" if reason is None else "broken", message=reason or f"resumed by {current_user()}")
    return schedule_to_json(_get(ss, name))


def remove(name: str, store: str | os.PathLike | None = None, near: str | os.PathLike | None = None) -> dict:
    """Delete a schedule with its firings and events (runs it made stay in the store)."""
    ss = _reading(store, near)
    row = _get(ss, name)
    dependants = [s["name"] for s in ss.all() if s["trigger"].get("kind") == "after" and s["trigger"].get("schedule") == name]
    if dependants:
        raise UsageError(f"schedule {name} has schedules that run after it: {', '.join(dependants)}", "remove those first: nbops schedule rm NAME")
    ss.remove(name)
    return {"removed": name, "notebook": row["notebook"]}


def run_now(name: str, store: str | os.PathLike | None = None, near: str | os.PathLike | None = None, *, now: float | None = None) -> dict:
    """Fire a schedule once, now: a firing keyed ``manual:<id>``. A live scheduler on the store
    runs it; with none (or for a paused schedule, whose firings a scheduler leaves waiting) it
    runs here, and this call returns when the run ends."""
    now = time.time() if now is None else now
    ss = _reading(store, near)
    row = _get(ss, name)
    reason = check_notebook(row)
    if reason is not None:
        ss.update(name, broken=reason)
        raise UsageError(f"schedule {name} is broken: {reason}", f"fix the notebook, then: nbops schedule resume {name}")
    key = f"manual:{uuid.uuid4().hex[:12]}"
    ss.add_firing(name, key, now, trigger={"kind": "manual", "schedule": name, "by": current_user()})
    # A scheduler leaves a paused schedule's firings waiting: a manual run of one runs here.
    live = [] if row.get("paused") else ss.schedulers(fresh_s=SCHEDULER_FRESH_S, now=now)
    if live:
        return {"schedule": name, "key": key, "ran": False, "scheduler": live[0]["id"], "firing": _firing_json(ss.firing(name, key))}
    from nbops.automate.firing import run_firing

    owner = f"run-now:{os.getpid()}:{key}"
    firing = ss.claim(name, key, owner, MANUAL_LEASE_S, now=time.time())
    if firing is None:  # a scheduler came up and took it meanwhile
        return {"schedule": name, "key": key, "ran": False, "firing": _firing_json(ss.firing(name, key))}
    result = _with_lease(ss, owner, lambda: run_firing(ss, row, firing, owner))
    return {"schedule": name, "key": key, "ran": True, "result": result, "firing": _firing_json(ss.firing(name, key))}


def _with_lease(ss: ScheduleStore, owner: str, job):
    """``job()`` while a thread renews ``owner``'s lease, so a scheduler started meanwhile does not take the firing as abandoned."""
    done = threading.Event()

    def renew() -> None:
        while not done.wait(MANUAL_LEASE_S / 3):
            try:
                ss.renew(owner, MANUAL_LEASE_S)
            except Exception:  # noqa: BLE001 - a missed renewal is retried; the run goes on
                continue

    thread = threading.Thread(target=renew, daemon=True, name="nbops-run-now-lease")
    thread.start()
    try:
        return job()
    finally:
        done.set()
        thread.join()


def check_notebook(schedule: dict) -> str | None:
    """Why a schedule cannot run its notebook (moved, deleted, analysis errors, parameters it no longer
    declares), or None when it can. The scheduler marks the schedule broken with this reason.

    The verdict is remembered per (notebook, params file) stat and parameters: a scheduler
    asking every tick for 1,000 schedules analyses a notebook again only once it changed."""
    path = Path(schedule["notebook"])
    params_file = schedule.get("params_file")
    try:
        stats = tuple((st.st_size, st.st_mtime_ns) for st in (os.stat(p) for p in filter(None, (path, params_file))))
    except OSError:
        stats = None
    if stats is None or not path.is_file():
        if not path.exists():
            return f"notebook {path} was moved or deleted"
        if params_file and not Path(params_file).is_file():
            return f"parameters file {params_file} was moved or deleted"
        return f"notebook {path} is not a file"
    key = (str(path), params_file, stats, json.dumps(schedule.get("params") or {}, sort_keys=True))
    if key in _CHECKED:
        return _CHECKED[key]
    try:
        graph = _analysed(path)
        _params(graph, path, schedule.get("params") or {}, params_file)
        reason = None
    except NbopsError as exc:
        reason = exc.render()
    if len(_CHECKED) > 10_000:
        _CHECKED.clear()
    _CHECKED[key] = reason
    return reason


_CHECKED: dict[tuple, str | None] = {}
