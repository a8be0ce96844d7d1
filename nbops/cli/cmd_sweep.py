"""``nbops sweep``: optuna sweeps whose trials are runs; ``nbops sweep show STUDY``."""

from __future__ import annotations

import argparse
import os
from typing import Callable

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = subparsers.add_parser(
        "sweep",
        help="sweep parameters with optuna; every trial is a run (or: nbops sweep show STUDY)",
        description="nbops sweep NOTEBOOK_OR_DIR --space ... --objective ... [options]\n"
        "nbops sweep show STUDY [--json]\n\n"
        "Space: name=loguniform(a,b) | uniform(a,b) | int(a,b) | int(a,b,log) | choice(a,b,...).\n"
        "Objectives: metric:max or metric:min (metrics of the run; scalar variables of that name count).\n"
        "Constraints: metric<=number (or >=, <, >).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="NOTEBOOK_OR_DIR", help="what to sweep, or 'show'")
    p.add_argument("study_name", nargs="?", metavar="STUDY", help="with 'show': the study to show")
    p.add_argument("--space", action="append", default=[], metavar="NAME=KIND(ARGS)", help="a swept parameter (repeatable)")
    p.add_argument("--objective", action="append", default=[], metavar="METRIC:max|min", help="repeatable: several = multi-objective")
    p.add_argument("--constraint", action="append", default=[], metavar="METRIC<=N", help="feasible trials satisfy it (repeatable)")
    p.add_argument("--trials", type=int, help="trials to run now (default 10, or the sweep file's)")
    p.add_argument("--parallel", type=int, help="trials at once (threads; default 1)")
    p.add_argument("--executor", help="local (default) or ray")
    p.add_argument("--address", help="Ray cluster address (or RAY_ADDRESS)")
    p.add_argument("--jobs", type=int, help="stages in parallel within a trial (local executor)")
    p.add_argument("--study", help="study name (default: <notebook>-<time>)")
    p.add_argument("--resume", action="store_true", help="run more trials of an existing --study")
    p.add_argument("--seed", type=int, help="sampler seed")
    p.add_argument("-f", "--sweep-file", metavar="YAML", help="space, objectives, constraints, trials, params... in YAML")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="fix a parameter for every trial")
    p.add_argument("--store", help="run store folder (default: .nbops beside the notebook, or $NBOPS_STORE)")
    p.add_argument("--notebook", help="with 'show': the notebook whose store holds the study")
    p.add_argument("--json", action="store_true", help="print the study as JSON")
    return {"sweep": _cmd_sweep}


def _cmd_sweep(a: argparse.Namespace) -> int:
    from nbops.errors import UsageError

    if a.target == "show":
        if not a.study_name:
            raise UsageError("nbops sweep show needs a study name", "nbops sweep show STUDY [--store DIR]")
        return _show(a)
    if a.study_name:
        raise UsageError(f"unexpected argument {a.study_name!r}", "nbops sweep NOTEBOOK --space ... --objective ...")
    return _run(a)


def _show(a: argparse.Namespace) -> int:
    from nbops import sweep
    from nbops.cli import render

    study = sweep.show_study(a.study_name, path=a.notebook, store=a.store)
    render.print_json(study) if a.json else _study_text(study)
    return 0


def _run(a: argparse.Namespace) -> int:
    from nbops import sweep
    from nbops.cli import render

    con = render.err_console

    def on_start(info: dict) -> None:
        if a.json:
            return
        verb = "resuming" if info["resume"] else "study"
        con.print(f"{verb} [bold]{info['study']}[/]: {info['trials']} trials, {info['parallel']} at a time")
        if info["shared_stages"]:
            con.print(f"  stages shared by every trial (run once, then cached): {', '.join(info['shared_stages'])}")
        con.print(f"  optuna storage {info['storage']}  ·  view it: {info['dashboard']}")

    def on_trial(t: dict) -> None:
        if a.json:
            return
        if t["state"] == "COMPLETE":
            tail = " ".join(f"{k}={render._fmt(v)}" for k, v in (t["values"] or {}).items())
            tail += "" if t["feasible"] is not False else "  [yellow](infeasible)[/]"
            mark = "[green]✓[/]"
        else:
            tail, mark = f"[red]{t['error'] or t['state']}[/]", "[red]✗[/]"
        params = " ".join(f"{k}={render._fmt(v)}" for k, v in t["params"].items())
        con.print(f"  {mark} trial {t['number']:<3} {params}  →  {tail}  [dim]run {t['run_id'] or '-'}[/]")

    result = sweep.run_sweep(
        a.target, space=a.space, objectives=a.objective, constraints=a.constraint, trials=a.trials, parallel=a.parallel,
        executor=a.executor, study=a.study, resume=a.resume, sweep_file=a.sweep_file, assignments=a.param, store=a.store,
        address=a.address or os.environ.get("RAY_ADDRESS"), jobs=a.jobs, seed=a.seed, on_trial=on_trial, on_start=on_start,
    )  # fmt: skip
    if a.json:
        render.print_json(result)
    else:
        _study_text(result)
        s = result["session"]
        for stage, n in s["cache"].items():
            con.print(f"  shared stage {stage}: reused in {n['cached']} of {n['cached'] + n['ran']} successful trials this session")
        if s["interrupted"]:
            stopped = ", ".join(map(str, s["stopped"])) or "none"
            con.print(f"[magenta]interrupted:[/] finished trials are kept; trials still running were stopped and told FAIL: {stopped}")
            con.print(f"  continue: nbops sweep {a.target} --study {result['study']} --resume --trials N")
    return 130 if result["session"]["interrupted"] else 0


def _study_text(study: dict) -> None:
    from rich.table import Table

    from nbops.cli import render

    con = render.console
    counts = ", ".join(f"{n} {state}" for state, n in sorted(study["counts"].items())) or "no trials"
    con.print(f"[bold]study {study['study']}[/] · {study['notebook']} · {counts}"
              + (f" · {study['infeasible']} infeasible" if study["infeasible"] else ""))  # fmt: skip
    con.print("objectives: " + ", ".join(f"{o['name']} ({o['direction']})" for o in study["objectives"])
              + ("  ·  constraints: " + ", ".join(c["text"] for c in study["constraints"]) if study["constraints"] else ""))  # fmt: skip
    title = "Pareto front" if study["multi_objective"] else "best trial"
    if not study["best"]:
        con.print(f"{title}: none yet (no finished feasible trial)")
    else:
        table = Table(title=title, title_justify="left", box=None, pad_edge=False)
        for col in ("trial", "run", "params", "metrics"):
            table.add_column(col, overflow="fold")
        for t in study["best"]:
            table.add_row(str(t["number"]), t["run_id"] or "", " ".join(f"{k}={render._fmt(v)}" for k, v in t["params"].items()),
                          " ".join(f"{k}={render._fmt(v)}" for k, v in t["metrics"].items()))  # fmt: skip
        con.print(table)
    con.print(f"[dim]storage {study['storage']} · view it: {study['dashboard']}[/]")
