"""``nbops sweep``: optuna sweeps whose trials are runs; ``nbops sweep show STUDY``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from nbops.cli.options import add_run_options, positive_int

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
    p.add_argument("--trials", type=positive_int, help="trials to run now (default 10, or the sweep file's)")
    p.add_argument("--parallel", type=positive_int, help="trials at once (threads; default 1)")
    p.add_argument("--study", help="study name (default: <notebook>-<time>)")
    p.add_argument("--resume", action="store_true", help="run more trials of an existing --study")
    p.add_argument("--seed", type=int, help="sampler seed")
    p.add_argument("-f", "--sweep-file", metavar="YAML", help="space, objectives, constraints, trials, params... in YAML")
    # -p fixes a parameter for every trial; -f is the sweep file here, so no --params-file.
    add_run_options(p, params_file=False, cache=False, metrics=False, executor_default=None)
    p.add_argument("--notebook", help="with 'show': the notebook whose store holds the study")
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
            tail = render.escape(render.pairs(t["values"]))
            tail += "" if t["feasible"] is not False else "  [yellow](infeasible)[/]"
            mark = "[green]✓[/]"
        else:
            tail, mark = f"[red]{render.escape(t['error'] or t['state'])}[/]", "[red]✗[/]"
        params = render.escape(render.pairs(t["params"]))
        con.print(f"  {mark} trial {t['number']:<3} {params}  →  {tail}  [dim]run {t['run_id'] or '-'}[/]")

    result = sweep.run_sweep(
        a.target, space=a.space, objectives=a.objective, constraints=a.constraint, trials=a.trials, parallel=a.parallel,
        executor=a.executor, study=a.study, resume=a.resume, sweep_file=a.sweep_file, assignments=a.param, store=a.store,
        address=a.address, jobs=a.jobs, seed=a.seed, on_trial=on_trial, on_start=on_start,
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
    if result["session"]["interrupted"]:
        return 130
    return _verdict(a, result)


def _verdict(a: argparse.Namespace, result: dict) -> int:
    """Exit 1 when this session ran trials and not one of them finished: the sweep learned nothing."""
    from nbops.cli import render

    session = set(result["session"]["trials"])
    mine = [t for t in result["trials"] if t["number"] in session]
    if not mine or any(t["state"] == "COMPLETE" for t in mine):
        return 0
    errors = sorted({t["error"] or t["state"] for t in mine})
    render.err_console.print(
        f"[red]nbops: error: all {len(mine)} trials of this sweep failed[/]: " + render.escape("; ".join(errors[:3]))
        + "\n  fix: name a metric the runs record in --objective/--constraint (nbops runs show RUN lists them), "
        "or open a failed trial's run: nbops runs show RUN"
    )  # fmt: skip
    return 1


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
            table.add_row(str(t["number"]), t["run_id"] or "", render.escape(render.pairs(t["params"])),
                          render.escape(render.pairs(t["metrics"])))  # fmt: skip
        con.print(table)
    con.print(f"[dim]storage {study['storage']} · view it: {study['dashboard']}[/]")
