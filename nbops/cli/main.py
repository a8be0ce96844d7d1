"""``nbops`` on the command line: parse, one library call, render. Exit codes
come from the error classes: 0 ok, 1 a run or check failed, 2 bad input,
3 store trouble, 130 interrupted."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# jsonschema (imported by nbformat and papermill) imports rfc3987_syntax when it is
# installed, and that compiles ~40 Lark grammars at import: 2-3 s of every nbops
# command on this machine. Notebooks never use the formats it checks (iri,
# uri-reference), so this process treats it as absent.
if "rfc3987_syntax" not in sys.modules:
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]

from nbops.cli.options import add_run_options, add_store_options, positive_int  # noqa: E402
from nbops.errors import NbopsError, RunFailed  # noqa: E402

__all__ = ["main", "build_parser"]


def build_parser(modules: bool = True) -> argparse.ArgumentParser:
    """The whole command line; ``modules=False`` leaves out the commands of COMMAND_MODULES
    (main() parses a built-in command without importing them: ~50 ms of a cached run)."""
    parser = argparse.ArgumentParser(prog="nbops", description="Tagged notebooks into versioned, cached pipelines.")
    parser.add_argument("--version", action="version", version=f"nbops {__import__('nbops').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("graph", help="show the stage graph of a notebook")
    p.add_argument("notebook")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("convert", help="write pipeline.yaml and one papermill notebook per stage")
    p.add_argument("notebook")
    p.add_argument("-o", "--output", required=True, metavar="DIR")

    p = sub.add_parser("run", help="run a notebook or converted pipeline as a versioned run")
    p.add_argument("target", metavar="NOTEBOOK_OR_DIR")
    add_run_options(p)
    p.add_argument("--dry-run", action="store_true", help="say which stages would run and why; run nothing")
    p.add_argument("--repeat", type=positive_int, default=1, help="run N times without cache and compare metrics")
    p.add_argument("--tolerance", type=float, default=0.0, help="relative metric difference allowed by --repeat")

    runs = sub.add_parser("runs", help="list, show and compare runs").add_subparsers(dest="runs_command", metavar="ACTION")
    runs.required = True
    p = runs.add_parser("ls", help="runs, newest first")
    p.add_argument("--notebook", help="only runs of this notebook (and its store)")
    add_store_options(p)
    p.add_argument("--user", metavar="NAME", help="only runs by this user (NBOPS_USER or the OS user of whoever ran them)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p = runs.add_parser("show", help="one run: stages, why each ran or was reused, metrics, checks, errors")
    p.add_argument("run", help="a run id, latest, or latest~N")
    p.add_argument("--notebook")
    add_store_options(p)
    p.add_argument("--json", action="store_true")
    p = runs.add_parser("diff", help="parameters, metrics, code and data that differ between two runs, and why")
    p.add_argument("run_a", help="a run id, latest or latest~N (e.g. latest~1)")
    p.add_argument("run_b", help="a run id, latest or latest~N")
    p.add_argument("--notebook")
    add_store_options(p)
    p.add_argument("--json", action="store_true")

    for name, help_ in (("resume", "continue a failed run from the failed stage"), ("rerun", "run again without cache; report differences")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("run", help="a run id, latest, or latest~N")
        p.add_argument("--notebook")
        add_run_options(p, params_file=False, cache=False, metrics=False)

    p = sub.add_parser("open", help="path of the executed notebook of a stage")
    p.add_argument("run", help="a run id, latest, or latest~N")
    p.add_argument("stage")
    p.add_argument("--notebook")
    add_store_options(p)

    # Commands that live in their own modules (test, report, sweep): each
    # module has register(subparsers) -> {command name: handler}.
    for mod in command_modules(COMMAND_MODULES if modules else []):
        COMMANDS.update(mod.register(sub))
    return parser


def command_modules(names: list[str]) -> Iterator[Any]:
    """The modules of ``names`` that this install has (a module left out of a slim
    package is skipped; an import error inside one is raised, not hidden)."""
    import importlib

    for name in names:
        try:
            yield importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def _cmd_graph(a: argparse.Namespace) -> int:
    from nbops import api
    from nbops.cli import render

    g = api.graph(a.notebook)
    if a.json:
        render.print_json(g)
    else:
        render.graph_text(g)
    if g["errors"]:
        from nbops.errors import CellIssue, GraphError

        raise GraphError(a.notebook, [CellIssue(e["message"], e["fix"], e["cell"], e["first_line"]) for e in g["errors"]])
    return 0


def _cmd_convert(a: argparse.Namespace) -> int:
    from nbops import api
    from nbops.cli import render

    spec = api.convert(a.notebook, a.output)
    out = os.path.normpath(a.output)  # "out/" and "out" print the same paths
    render.console.print(f"wrote {os.path.join(out, 'pipeline.yaml')} and {len(spec.stages)} stage notebooks: "
                         + ", ".join(f"stages/{s.name}.ipynb" for s in spec.stages))  # fmt: skip
    first = os.path.join(out, spec.stages[0].notebook)
    cwd = os.path.dirname(os.path.abspath(a.notebook))
    render.console.print(f"run a stage: papermill {first} out.ipynb -p nbops_artifact_dir {os.path.join(out, 'artifacts')} --cwd {cwd}")
    return 0


def _finish_run(result: dict, as_json: bool) -> int:
    from nbops.cli import render

    if as_json:
        render.print_json(result)
    else:
        metrics = render.pairs(result["metrics"])
        render.err_console.print(f"run [bold]{result['id']}[/] {render.styled_status(result['status'])} in {result['duration_s']}s"
                                 + (f" · {render.escape(metrics)}" if metrics else ""))  # fmt: skip
        for m in result.get("models") or []:
            render.err_console.print(
                f"registered model {render.escape(m['name'])} v{m['version']} (nbops models show {render.escape(m['name'])}@{m['version']})"
            )
        if "differences" in result:  # a rerun: say the verdict either way
            outputs, metrics_n = render.compared(result)
            render.differences(result["differences"], outputs=outputs, metrics=metrics_n)
    if result["status"] != "succeeded":
        failed = [s for s in result["stages"] if s["status"] == "failed"]
        if failed and not as_json:
            s = failed[0]
            e = s.get("error") or {}
            where = render.error_where(e)
            render.err_console.print(render.escape(f"stage {s['name']} failed{', ' + where if where else ''}: {e.get('ename')}: {e.get('evalue')}"),
                                     style="red")  # fmt: skip
            render.err_console.print(f"  executed notebook: nbops open {result['id']} {s['name']}   ·   continue: nbops resume {result['id']}")
        return RunFailed.exit_code
    return 1 if result.get("differences") else 0


def _cmd_run(a: argparse.Namespace) -> int:
    from nbops import api
    from nbops.cli import render

    if a.dry_run:
        plan = api.plan_run(a.target, params_file=a.params_file, assignments=a.param, store=a.store, no_cache=a.no_cache)
        render.print_json(plan) if a.json else render.plan_text(plan)
        return 0
    progress = render.RunProgress()
    kwargs: dict[str, Any] = dict(params_file=a.params_file, assignments=a.param, executor=a.executor, jobs=a.jobs,
                                  store=a.store, address=a.address, metric_names=a.metric, progress=progress, daemon=True)  # fmt: skip
    if a.repeat == 1:
        return _finish_run(api.run(a.target, no_cache=a.no_cache, **kwargs), a.json)
    results = [api.run(a.target, no_cache=True, **kwargs) for _ in range(a.repeat)]
    code = max(_finish_run(r, a.json) for r in results)
    first = results[0]
    outputs, metrics = render.compared(first)
    for other in results[1:]:
        # Metrics decide (within --tolerance); outputs are shown, since a pickle may differ byte-wise.
        diffs = api.differences(first, other, a.tolerance)
        metric_differs = any(d["kind"] == "metric" for d in diffs)
        if not a.json:
            render.err_console.print(f"{first['id']} vs {other['id']} (tolerance {a.tolerance:g}):")
            label = "not reproducible" if metric_differs else "outputs differ, metrics agree"
            render.differences(diffs, outputs=outputs, metrics=metrics, label=label)
        if metric_differs:
            code = max(code, 1)
    return code


def _where(a: argparse.Namespace) -> dict:
    return {"path": getattr(a, "notebook", None), "store": getattr(a, "store", None)}


def run_id(a: argparse.Namespace, value: str) -> str:
    """A run id from the command line: an id, ``latest`` or ``latest~N``."""
    from nbops.report import resolve_run_id

    return resolve_run_id(value, **_where(a))


def _cmd_runs(a: argparse.Namespace) -> int:
    from nbops import api
    from nbops.cli import render

    if a.runs_command == "ls":
        runs = api.list_runs(a.notebook, store=a.store, limit=a.limit, user=a.user)
        render.print_json(runs) if a.json else render.runs_table(runs)
    elif a.runs_command == "show":
        run = api.get_run(run_id(a, a.run), **_where(a))
        render.print_json(run) if a.json else render.run_detail(run)
    else:
        d = api.diff_runs(run_id(a, a.run_a), run_id(a, a.run_b), **_where(a))
        render.print_json(d) if a.json else render.diff_text(d)
    return 0


def _cmd_resume_rerun(a: argparse.Namespace) -> int:
    from nbops import api
    from nbops.cli import render
    from nbops.plan import parse_assignments

    fn = api.resume if a.command == "resume" else api.rerun
    result = fn(run_id(a, a.run), executor=a.executor, jobs=a.jobs, progress=render.RunProgress(),
                params=parse_assignments(a.param), address=a.address, **_where(a))  # fmt: skip
    return _finish_run(result, a.json)


def _cmd_open(a: argparse.Namespace) -> int:
    from nbops import api

    print(api.stage_notebook(run_id(a, a.run), a.stage, **_where(a)))
    return 0


COMMAND_MODULES = [
    "nbops.cli.cmd_why", "nbops.cli.cmd_test", "nbops.cli.cmd_report", "nbops.cli.cmd_sweep", "nbops.cli.cmd_store",
    "nbops.cli.cmd_models", "nbops.cli.cmd_predict", "nbops.cli.cmd_serve", "nbops.cli.cmd_features",
    "nbops.cli.cmd_schedule", "nbops.cli.cmd_scheduler", "nbops.cli.cmd_export", "nbops.cli.cmd_daemon",
]  # fmt: skip

BUILTIN = ("graph", "convert", "run", "runs", "resume", "rerun", "open")  # the commands defined in this file

COMMANDS = {
    "graph": _cmd_graph,
    "convert": _cmd_convert,
    "run": _cmd_run,
    "runs": _cmd_runs,
    "resume": _cmd_resume_rerun,
    "rerun": _cmd_resume_rerun,
    "open": _cmd_open,
}


def _first_ctrl_c(signum: int, frame: Any) -> None:
    """Ctrl-C: the run stops (kernels interrupted and killed, the run recorded
    interrupted); a second Ctrl-C quits at once, leaving the cleanup to the next start."""
    signal.signal(signal.SIGINT, _second_ctrl_c)
    os.write(2, b"nbops: interrupted: stopping (Ctrl-C again to quit at once)\n")
    raise KeyboardInterrupt


def _second_ctrl_c(signum: int, frame: Any) -> None:
    os.write(2, b"nbops: interrupted again: quitting now\n")
    os._exit(130)


@contextmanager
def _objects_setting(objects: str | None) -> Iterator[None]:
    """``--objects``: handed to the settings resolver as $NBOPS_OBJECTS, which kernels and
    subprocesses of the command inherit too; put back afterwards (main() also runs in-process)."""
    if not objects:
        yield
        return
    saved = os.environ.get("NBOPS_OBJECTS")
    os.environ["NBOPS_OBJECTS"] = objects
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("NBOPS_OBJECTS", None)
        else:
            os.environ["NBOPS_OBJECTS"] = saved


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    builtin = bool(argv) and argv[0] in BUILTIN
    parser = build_parser(modules=not builtin)
    args = parser.parse_args(argv)
    if builtin and args.command in ("resume", "rerun"):
        # What registering cmd_daemon does for every command: this short-lived process takes its
        # kernel templates from `nbops daemon` (started when a stage first needs one). `run` asks
        # api.run for it (daemon=True), after its fully cached path had the chance to need no kernel.
        from nbops.execute import forkserver

        forkserver.use_daemon()
    # Only the main thread may set signal handlers (main() also runs inside tests and servers).
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _first_ctrl_c) if in_main else None
    try:
        with _objects_setting(getattr(args, "objects", None)):
            return COMMANDS[args.command](args)
    except NbopsError as exc:
        print(f"nbops: error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nbops: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in nbops: say so plainly, keep the traceback for who asks
        if os.environ.get("NBOPS_DEBUG"):
            raise
        print(f"nbops: internal error: {type(exc).__name__}: {exc}\n  (set NBOPS_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 70
    finally:
        if previous is not None and signal.getsignal(signal.SIGINT) is _first_ctrl_c:  # after a Ctrl-C, a second one still quits at once
            signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
