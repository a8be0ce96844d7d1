"""Sweeps: an optuna study whose trials are nbops runs (``nbops sweep``).

A trial is ``api.run(..., study=NAME, trial=N, kind="trial")``: an ordinary
run in the store, linked to the study. Stages that read no swept parameter
(and load nothing from a stage that does) have the same cache key in every
trial, so they run once and are reused by every later trial; the sweep
reports how often each of those shared stages was reused.

The search space is parsed as data, never evaluated::

    lr=loguniform(1e-4,1e-1)   uniform(a,b)   depth=int(2,12)   int(a,b,log)   model=choice(rf,gbm)

``choice`` values are typed by the parameter's declared type (the notebook's
parameters cell). Objectives name metrics of the run JSON (``accuracy:max``);
constraints bound them (``latency_ms<=100``); both are passed to the run as
``metric_names``, so a notebook that never imports nbops can be swept by
naming its scalar variables.

Only the driver (this process, the thread that calls ``run_sweep``) opens the
optuna storage: it asks for a trial, hands the parameters to a worker thread
that runs the pipeline, and tells optuna the result. The storage is an SQLite
file in the run store (``<store>/optuna.db``) that ``optuna-dashboard`` opens.
"""

from __future__ import annotations

import math
import os
import queue
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops import api
from nbops.errors import MissingExtraError, NbopsError, NotFoundError, UsageError
from nbops.plan import parse_assignments, resolve_params
from nbops.store import RunStore
from nbops.text import cell_ref

if TYPE_CHECKING:
    import optuna

    from nbops.spec import PipelineSpec

__all__ = [
    "Dimension", "Objective", "Constraint", "parse_space", "parse_dimension", "parse_objective", "parse_constraint",
    "load_sweep_file", "run_sweep", "show_study", "storage_url", "shared_stages", "pareto_front", "STUDY_NAME_RE",
]  # fmt: skip

from nbops.sweep_space import (  # noqa: E402 - also re-exported: nbops.sweep.parse_space etc.
    STUDY_NAME_RE,
    Constraint,
    Dimension,
    Objective,
    load_sweep_file,
    parse_constraint,
    parse_dimension,
    parse_objective,
    parse_space,
)  # fmt: skip

# -- storage ------------------------------------------------------------------------------------------


def storage_url(store_root: str | os.PathLike) -> str:
    """The optuna storage of a run store: ``sqlite:///<store>/optuna.db``."""
    return f"sqlite:///{Path(store_root).resolve() / 'optuna.db'}"


def _optuna():
    try:
        import optuna
    except ImportError:
        raise MissingExtraError("nbops sweep", "sweep", "optuna") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _constraints_func(trial: optuna.trial.FrozenTrial) -> list[float]:
    # Module level (not a closure): the sampler is rebuilt identically on --resume.
    return list(trial.user_attrs.get("constraint", [1.0]))


def _sampler(optuna_mod, has_constraints: bool, seed: int | None):
    # optuna >= 5 reads the values set with Trial.set_constraint (see _tell); older
    # releases need constraints_func, which reads the "constraint" user attribute.
    legacy = has_constraints and not hasattr(optuna_mod.trial.Trial, "set_constraint")
    return optuna_mod.samplers.TPESampler(seed=seed, constraints_func=_constraints_func if legacy else None)


# -- which stages a sweep shares across trials ---------------------------------------------------------


def shared_stages(spec: PipelineSpec, swept: Iterable[str]) -> list[str]:
    """Stages whose cache key is the same in every trial: they read no swept
    parameter and no output of a stage that does."""
    swept = set(swept)
    varying: set[str] = set()
    for s in spec.stages:  # topological order
        if swept & set(s.parameters) or any(u in varying for u in s.upstream):
            varying.add(s.name)
    return [s.name for s in spec.stages if s.name not in varying]


# -- running a sweep -------------------------------------------------------------------------------------


@dataclass
class _Plan:
    name: str
    target: str
    dims: list[Dimension]
    objectives: list[Objective]
    constraints: list[Constraint]
    fixed: dict[str, Any]
    seed: int | None
    storage: str
    metric_names: list[str] = field(default_factory=list)


def _default_study_name(target: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]", "-", Path(target).stem or "sweep")[:60] or "sweep"
    return f"{stem}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def _plan(target, prep: api.Prepared, *, space, objectives, constraints, study, resume, sweep_file, params, assignments, seed) -> tuple[_Plan, dict]:
    conf = load_sweep_file(sweep_file) if sweep_file else {}
    space = list(conf.get("space", [])) + list(space or [])
    objective_texts = list(objectives or []) or conf.get("objectives", [])
    constraint_texts = list(constraints or []) or conf.get("constraints", [])
    name = study or conf.get("study")
    seed = seed if seed is not None else conf.get("seed")
    fixed_given = {**(conf.get("params") or {}), **parse_assignments(assignments or []), **(params or {})}
    rs = prep.store
    stored = rs.get_study(name) if name else None
    if resume:
        if not name:
            raise UsageError("--resume needs --study NAME", "see 'nbops sweep show' for the studies of a store")
        if stored is None:
            raise NotFoundError(f"no study {name!r} in the store {rs.location}", "start it without --resume (and check --store)")
        if Path(stored["notebook"]) != Path(prep.notebook):
            raise UsageError(f"study {name} sweeps {stored['notebook']}, not {prep.notebook}", "resume it with its own notebook")
        space = space or [d["text"] for d in stored["space"]]
        objective_texts = objective_texts or [f"{o['name']}:{o['direction'][:3]}" for o in stored["objectives"]]
        constraint_texts = constraint_texts or [c["text"] for c in stored["constraints"]]
        fixed_given = fixed_given or stored.get("params", {})
        seed = seed if seed is not None else stored.get("seed")
    elif stored is not None:
        raise UsageError(f"study {name!r} already exists in {rs.location}", "add --resume to run more trials of it, or pick another --study")
    name = name or _default_study_name(str(target))
    if not STUDY_NAME_RE.match(name):
        raise UsageError(f"{name!r} is not a study name", "letters, digits, '_', '.', '-' (up to 100), starting with a letter or digit")
    dims = parse_space(space, prep.spec.parameters)
    objs = [parse_objective(o) for o in objective_texts]
    if not objs:
        raise UsageError("a sweep needs an --objective", "e.g. --objective accuracy:max")
    if len({o.name for o in objs}) != len(objs):
        raise UsageError("an objective is named twice", "give each metric one direction")
    cons = [parse_constraint(c) for c in constraint_texts]
    clash = sorted(set(fixed_given) & {d.name for d in dims})
    if clash:
        raise UsageError(f"{', '.join(clash)} is both swept and fixed", "drop it from -p / params, or from --space")
    fixed = {k: v for k, v in resolve_params(prep.spec.parameters, fixed_given, prep.notebook).items() if k in fixed_given}
    if resume:
        old = ([d["text"] for d in stored["space"]], [(o["name"], o["direction"]) for o in stored["objectives"]])
        new = ([d.text for d in dims], [(o.name, o.direction) for o in objs])
        if sorted(old[0]) != sorted(new[0]) or old[1] != new[1]:
            raise UsageError(f"study {name} was started with space {old[0]} and objectives {old[1]}; a study keeps them",
                             "resume without --space/--objective, or start a new --study")  # fmt: skip
    metric_names = list(dict.fromkeys([o.name for o in objs] + [c.metric for c in cons]))
    plan = _Plan(name, str(target), dims, objs, cons, fixed, seed, storage_url(rs.root), metric_names)
    return plan, conf


def run_sweep(
    target: str | os.PathLike,
    *,
    space: Iterable[str] = (),
    objectives: Iterable[str] = (),
    constraints: Iterable[str] = (),
    trials: int | None = None,
    parallel: int | None = None,
    executor: str | None = None,
    study: str | None = None,
    resume: bool = False,
    sweep_file: str | os.PathLike | None = None,
    params: Mapping[str, Any] | None = None,
    assignments: list[str] | None = None,
    store: str | os.PathLike | None = None,
    address: str | None = None,
    jobs: int | None = None,
    seed: int | None = None,
    on_trial: Callable[[dict], None] | None = None,
    on_start: Callable[[dict], None] | None = None,
) -> dict:
    """Run ``trials`` more trials of a study; returns ``show_study``'s JSON plus a ``session`` part.

    ``session``: the trial numbers run now, whether Ctrl-C stopped the sweep
    (``interrupted``: finished trials are kept; trials still running are
    stopped and told FAIL with the user attribute ``interrupted``), and per
    shared stage how many of this session's trials reused it (``cache``).
    Bad input raises before any trial runs; a failing trial is told FAIL and
    the sweep goes on.
    """
    optuna_mod = _optuna()
    prep = api.prepare(target, store)
    plan, conf = _plan(target, prep, space=space, objectives=objectives, constraints=constraints, study=study, resume=resume,
                       sweep_file=sweep_file, params=params, assignments=assignments, seed=seed)  # fmt: skip
    n_trials = int(trials if trials is not None else conf.get("trials", 10))
    parallel = max(1, int(parallel if parallel is not None else conf.get("parallel", 1)))
    executor = executor or conf.get("executor") or "local"
    if n_trials < 1:
        raise UsageError(f"--trials {n_trials}: run at least one trial", "e.g. --trials 20")
    directions = [o.direction for o in plan.objectives]
    if resume:
        # The same seed again would propose the same first points again: offset it by the trials so far.
        done_so_far = len(optuna_mod.load_study(study_name=plan.name, storage=plan.storage).get_trials(deepcopy=False))
        seed_now = None if plan.seed is None else int(plan.seed) + done_so_far
        sampler = _sampler(optuna_mod, bool(plan.constraints), seed_now)
        ostudy = optuna_mod.load_study(study_name=plan.name, storage=plan.storage, sampler=sampler)
    else:
        sampler = _sampler(optuna_mod, bool(plan.constraints), plan.seed)
        try:
            ostudy = optuna_mod.create_study(study_name=plan.name, storage=plan.storage, sampler=sampler, directions=directions)
        except optuna_mod.exceptions.DuplicatedStudyError:
            raise UsageError(f"{plan.storage} already has an optuna study {plan.name!r}", "pick another --study") from None
        prep.store.put_study(plan.name, _study_record(plan, prep))
    shared = shared_stages(prep.spec, [d.name for d in plan.dims])
    if on_start:
        on_start({"study": plan.name, "storage": plan.storage, "trials": n_trials, "parallel": parallel, "shared_stages": shared,
                  "dashboard": f"optuna-dashboard {plan.storage}", "resume": resume})  # fmt: skip

    slots: queue.Queue = queue.Queue()
    executors: list[Any] = []
    for _ in range(parallel):
        # Parallel trials bring the parallelism: one stage at a time within each, unless --jobs says otherwise.
        ex = api.open_executor(prep, executor, jobs=jobs or (1 if parallel > 1 else None), address=address)
        if hasattr(ex, "warm_up"):
            ex.warm_up()  # kernels start now, while optuna sets up; each trial takes a warm one
        executors.append(ex)
        slots.put(ex)

    def run_trial(number: int, values: dict[str, Any]) -> dict[str, Any]:  # a worker thread: no optuna here
        ex = slots.get()
        try:
            context = api.RunContext(kind="trial", study=plan.name, trial=number, prepared=prep, executor=ex)
            return api.run(plan.target, {**plan.fixed, **values}, metric_names=plan.metric_names, context=context)
        except NbopsError as exc:
            return {"error": exc.render()}
        finally:
            slots.put(ex)

    pool = ThreadPoolExecutor(parallel, thread_name_prefix="nbops-trial")
    running: dict[Future, Any] = {}
    session: list[int] = []
    cache = {name: {"cached": 0, "ran": 0} for name in shared}
    # Nothing cached yet: one trial first, so parallel trials reuse its shared stages.
    warm_first = parallel > 1 and bool(shared) and not any(t.state.name == "COMPLETE" for t in ostudy.get_trials(deepcopy=False))
    asked = 0
    interrupted = False
    try:
        while asked < n_trials or running:
            limit = 1 if warm_first and not session else parallel
            while asked < n_trials and len(running) < limit:
                trial = ostudy.ask()
                values = {d.name: d.suggest(trial) for d in plan.dims}
                asked += 1
                running[pool.submit(run_trial, trial.number, values)] = trial
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                trial = running.pop(fut)
                result = _tell(ostudy, trial, fut.result(), plan, optuna_mod)
                session.append(trial.number)
                for stage in result.get("stages", []):
                    if stage["name"] in cache and stage["status"] in ("cached", "succeeded"):
                        cache[stage["name"]]["cached" if stage["status"] == "cached" else "ran"] += 1
                if on_trial:
                    on_trial(_trial_json(ostudy.get_trials(deepcopy=False)[trial.number], plan.objectives, plan.constraints))
    except KeyboardInterrupt:
        interrupted = True
        for ex in executors:
            ex.cancel_all()  # running stages stop; their runs end as failed
        wait(list(running), timeout=30)
        for trial in running.values():
            trial.set_user_attr("interrupted", True)
            trial.set_user_attr("error", "stopped by Ctrl-C")
            ostudy.tell(trial, state=optuna_mod.trial.TrialState.FAIL, skip_if_finished=True)
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=True)
        for ex in executors:
            ex.close()
    out = show_study(plan.name, store=prep.store)
    out["session"] = {
        "trials": sorted(session), "stopped": sorted(t.number for t in running.values()) if interrupted else [],
        "interrupted": interrupted, "shared_stages": shared, "cache": cache, "parallel": parallel,
    }  # fmt: skip
    return out


def _study_record(plan: _Plan, prep: api.Prepared) -> dict[str, Any]:
    return {
        "notebook": prep.notebook, "target": str(Path(plan.target).resolve()), "storage": plan.storage,
        "space": [d.to_json() for d in plan.dims], "objectives": [o.to_json() for o in plan.objectives],
        "constraints": [c.to_json() for c in plan.constraints], "params": plan.fixed, "seed": plan.seed,
        "metric_names": plan.metric_names, "sampler": "TPESampler",
    }  # fmt: skip


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _tell(ostudy, trial, result: dict, plan: _Plan, optuna_mod) -> dict:
    """Tell optuna how the trial went; the driver's only write to the study."""
    fail = optuna_mod.trial.TrialState.FAIL
    if "error" in result:
        trial.set_user_attr("error", result["error"])
        ostudy.tell(trial, state=fail)
        return result
    trial.set_user_attr("run_id", result["id"])
    trial.set_user_attr("run_status", result["status"])
    metrics = {k: v for k, v in result["metrics"].items() if isinstance(v, (int, float, str, bool)) or v is None}
    trial.set_user_attr("metrics", metrics)
    if result["status"] != "succeeded":
        failed = next((s for s in result["stages"] if s["status"] == "failed"), None)
        e = (failed or {}).get("error") or {}
        where = f" at {cell_ref(e['cell'], e.get('first_line'))}" if e.get("cell") is not None else ""
        trial.set_user_attr("error", f"stage {failed['name']} failed{where}: {e.get('ename')}: {e.get('evalue')}" if failed else f"run {result['status']}")
        ostudy.tell(trial, state=fail)
        return result
    values = [_number_or_none(result["metrics"].get(o.name)) for o in plan.objectives]
    missing = [o.name for o, v in zip(plan.objectives, values) if v is None]
    missing += [c.metric for c in plan.constraints if _number_or_none(result["metrics"].get(c.metric)) is None]
    if missing:
        have = ", ".join(result["metrics"]) or "none"
        trial.set_user_attr("error", f"the run has no numeric metric {', '.join(sorted(set(missing)))} (metrics: {have})")
        ostudy.tell(trial, state=fail)
        return result
    if plan.constraints:
        constraint = [c.value(result["metrics"]) for c in plan.constraints]
        trial.set_user_attr("constraint", constraint)  # readable by any optuna (and constraints_func)
        if hasattr(trial, "set_constraint"):
            for c, v in zip(plan.constraints, constraint):
                trial.set_constraint(c.text, v)
    ostudy.tell(trial, values)
    return result


# -- reading a study -------------------------------------------------------------------------------------------


def _trial_json(t, objectives: list[Objective], constraints: list[Constraint]) -> dict[str, Any]:
    cons = t.user_attrs.get("constraint")
    feasible = None
    if t.state.name == "COMPLETE":
        feasible = True if not constraints else all(c.satisfied(v) for c, v in zip(constraints, cons or []))
    started, ended = t.datetime_start, t.datetime_complete
    return {
        "number": t.number, "state": t.state.name, "params": dict(t.params),
        "values": dict(zip([o.name for o in objectives], t.values)) if t.values else None,
        "metrics": t.user_attrs.get("metrics", {}), "run_id": t.user_attrs.get("run_id"),
        "constraint": cons, "feasible": feasible, "error": t.user_attrs.get("error"),
        "interrupted": bool(t.user_attrs.get("interrupted")),
        "started_at": started.isoformat(timespec="seconds") if started else None,
        "duration_s": round((ended - started).total_seconds(), 3) if started and ended else None,
    }  # fmt: skip


def pareto_front(trials: list[dict], objectives: list[Objective]) -> list[dict]:
    """The non-dominated trials among ``trials`` (each with ``values``)."""
    from nbops.pareto import pareto_front as front_mask

    if not trials:
        return []
    points = [[t["values"][o.name] for o in objectives] for t in trials]
    mask = front_mask(points, [o.direction for o in objectives])
    return [t for t, on_front in zip(trials, mask) if on_front]


def show_study(name: str, *, path=None, store=None) -> dict:
    """A study: its spec, every trial (params, metrics, run id, state) and the best
    trial (one objective) or the Pareto front (several), among feasible trials."""
    optuna_mod = _optuna()
    if not STUDY_NAME_RE.match(str(name)):
        raise UsageError(f"{name!r} is not a study name", "see the name 'nbops sweep' printed")
    rs = store if isinstance(store, RunStore) else api.open_store(store, path, create=False)
    spec = rs.get_study(name)
    if spec is None:
        raise NotFoundError(f"no study {name!r} in the store {rs.location}", "pass --store (or --notebook) where the sweep ran")
    objectives = [Objective(o["name"], o["direction"]) for o in spec["objectives"]]
    constraints = [Constraint(c["metric"], c["op"], c["bound"]) for c in spec["constraints"]]
    try:
        ostudy = optuna_mod.load_study(study_name=name, storage=spec["storage"])
    except KeyError:
        raise NotFoundError(f"the optuna study {name!r} is not in {spec['storage']}", "the optuna.db of the store was removed") from None
    trials = [_trial_json(t, objectives, constraints) for t in ostudy.get_trials(deepcopy=False)]
    good = [t for t in trials if t["state"] == "COMPLETE" and t["feasible"]]
    if len(objectives) == 1:
        o = objectives[0]
        pick = max if o.direction == "maximize" else min
        best = [pick(good, key=lambda t: t["values"][o.name])] if good else []
    else:
        best = pareto_front(good, objectives)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t["state"].lower()] = counts.get(t["state"].lower(), 0) + 1
    return {
        "study": name, "notebook": spec["notebook"], "storage": spec["storage"], "dashboard": f"optuna-dashboard {spec['storage']}",
        "created_at": datetime.fromtimestamp(spec["created_at"], timezone.utc).isoformat(timespec="seconds"),
        "space": spec["space"], "objectives": spec["objectives"], "constraints": spec["constraints"], "params": spec.get("params", {}),
        "multi_objective": len(objectives) > 1, "counts": counts, "infeasible": sum(1 for t in trials if t["feasible"] is False),
        "best": best, "trials": trials,
    }  # fmt: skip
