"""``%nbops graph | run | runs | show``: the pipeline of the notebook this kernel runs.

Each command parses its line, makes one ``nbops.api`` call and returns (or
displays) a view from ``nbops.magics.display``. The notebook is found from
the kernel (see ``find_notebook``) unless ``--notebook PATH`` names it.

The graph and the run read the notebook FILE, not the kernel's cells: edits
not saved yet are not part of them. Every graph/run therefore says which
saved version it read (the file's modification time), and warns by name
about the ``%%stage`` cells this kernel ran after that save
whose text differs from the file's cell of that stage.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

from nbops import api
from nbops.errors import NbopsError
from nbops.magics.cell import CellLog
from nbops.magics.display import GraphView, RunProgressView, RunsView, RunView, ShownError
from nbops.store import store_settings

__all__ = ["NbopsMagics", "find_notebook"]

NOTEBOOK_FIX = "pass --notebook PATH (the .ipynb file of this notebook)"


# -- which notebook ------------------------------------------------------------------------------


def _session_candidates(session: str, cwd: Path) -> list[Path]:
    """Where ``JPY_SESSION_NAME`` may point. jupyter_server sets it to an absolute
    path when the frontend sends the session's file name (JupyterLab does), else
    to the API path, which is relative to the server root, not to the kernel's
    working directory (the notebook's folder). The server root is an ancestor of
    that folder, so try the path below each ancestor, then the file name in the
    working directory."""
    path = Path(session).expanduser()
    if path.is_absolute():
        return [path]
    return [cwd / path, *(parent / path for parent in cwd.parents), cwd / path.name]


def find_notebook(given: str | None, user_ns: dict[str, Any] | None = None) -> Path:
    """The notebook file: ``given``, else the kernel's Jupyter session, else VS Code's."""
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise ShownError(f"{given} not found", "pass --notebook PATH to an existing .ipynb file")
        return path
    cwd = Path.cwd()
    session = os.environ.get("JPY_SESSION_NAME", "")
    if session:
        for candidate in _session_candidates(session, cwd):
            if candidate.suffix == ".ipynb" and candidate.is_file():
                return candidate
    vscode = (user_ns or {}).get("__vsc_ipynb_file__")  # VS Code's Jupyter extension sets it
    if isinstance(vscode, str) and Path(vscode).is_file():
        return Path(vscode)
    if session:
        raise ShownError(f"this kernel was started for {session!r}, which is not a notebook file here (renamed or moved since?)", NOTEBOOK_FIX)
    raise ShownError("cannot tell which notebook this kernel runs (no Jupyter session told it)", NOTEBOOK_FIX)


def _store_shown(args: argparse.Namespace, path: Path) -> str:
    """The store these commands use, as people may see it (passwords masked); nothing is opened."""
    return store_settings(args.store, path).describe()


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)


def _ago(seconds: float) -> str:
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} days ago"


def saved_version_notices(path: Path, log: CellLog) -> list[str]:
    """Which saved version a graph/run reads, and the cells run since that are not in it."""
    saved_at = path.stat().st_mtime
    notices = [f"reads {path.name} as saved at {time.strftime('%H:%M:%S', time.localtime(saved_at))} "
               f"({_ago(time.time() - saved_at)}); unsaved edits are not included"]  # fmt: skip
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        sources = ["".join(c["source"]) if isinstance(c.get("source"), list) else c.get("source", "") for c in cells]
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return notices  # an unreadable notebook is reported by the library call
    unsaved = log.not_saved(sources, saved_at)
    if unsaved:
        notices.append(f"warning: the cells of stage {', '.join(unsaved)} ran after that save and differ from the file: "
                       "save the notebook (Ctrl+S) to include them")  # fmt: skip
    return notices


# -- the command line ----------------------------------------------------------------------------


class _HelpShown(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting: SystemExit must not reach the kernel."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}\n{self.format_usage().strip()}")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            print(message, file=sys.stderr)
        raise _HelpShown()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="%nbops", description="The pipeline of this notebook (the saved file).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def where(p: argparse.ArgumentParser, store: bool = True) -> None:
        p.add_argument("--notebook", metavar="PATH", help="the notebook (default: the one this kernel runs)")
        if store:
            p.add_argument("--store", metavar="DIR", help="run store (default: .nbops beside the notebook, or $NBOPS_STORE)")

    where(sub.add_parser("graph", help="the stage graph"), store=False)
    p = sub.add_parser("run", help="run the pipeline; shows live progress, then the run")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="set a parameter (repeatable)")
    p.add_argument("-f", "--params-file", metavar="YAML", help="parameters from a YAML file")
    p.add_argument("--executor", default="local", help="local (default) or ray")
    p.add_argument("--address", help="Ray cluster address (or $RAY_ADDRESS)")
    p.add_argument("--jobs", type=int, metavar="N", help="stages run in parallel (local executor)")
    p.add_argument("--no-cache", action="store_true", help="run every stage, reuse nothing")
    p.add_argument("--metric", action="append", default=[], metavar="NAME", help="record a scalar variable as a metric")
    where(p)
    p = sub.add_parser("runs", help="the notebook's runs, newest first")
    p.add_argument("--limit", type=int, default=20, metavar="N")
    where(p)
    p = sub.add_parser("show", help="one run: stages, metrics, the failed cell and its error")
    p.add_argument("run", nargs="?", metavar="RUN", help="run id (default: the newest run)")
    where(p)
    return parser


# -- the magic -----------------------------------------------------------------------------------


def _in_kernel(shell: Any) -> bool:
    """A Jupyter kernel can redraw a display; a terminal can only print."""
    return getattr(shell, "kernel", None) is not None


@magics_class
class NbopsMagics(Magics):
    """``%nbops``: graph, run, runs, show."""

    def __init__(self, shell: Any, log: CellLog | None = None):
        super().__init__(shell)
        self.log = log if log is not None else CellLog()

    @line_magic
    def nbops(self, line: str) -> Any:
        """%nbops graph | run | runs | show  [--notebook PATH] ...   (%nbops -h, %nbops run -h for the options)"""
        parser = build_parser()
        try:
            args = parser.parse_args(shlex.split(line, posix=os.name != "nt"))  # keep Windows backslashes
        except _HelpShown:
            return None
        except ValueError as exc:  # shlex: an unclosed quote
            raise UsageError(f"%nbops: {exc}") from None
        if args.command is None:
            raise UsageError(f"%nbops needs a command: graph, run, runs or show\n{parser.format_usage().strip()}")
        command: Callable[[argparse.Namespace], Any] = getattr(self, f"_{args.command}")
        try:
            return command(args)
        except (ShownError, UsageError):
            raise
        except NbopsError as exc:
            raise ShownError(exc.message, exc.fix) from None
        except Exception as exc:  # a bug in nbops: say so plainly, keep the traceback for who asks
            if os.environ.get("NBOPS_DEBUG"):
                raise
            raise ShownError(f"internal error: {type(exc).__name__}: {exc}",
                             "%env NBOPS_DEBUG=1 and run it again for the traceback, and please report it") from None  # fmt: skip

    def _notebook(self, args: argparse.Namespace) -> Path:
        return find_notebook(args.notebook, self.shell.user_ns)

    def _graph(self, args: argparse.Namespace) -> GraphView:
        path = self._notebook(args)
        return GraphView(api.graph(path), saved_version_notices(path, self.log))

    def _runs(self, args: argparse.Namespace) -> RunsView:
        path = self._notebook(args)
        return RunsView(api.list_runs(path, store=args.store, limit=args.limit), _shown(path), store=_store_shown(args, path))

    def _show(self, args: argparse.Namespace) -> RunView:
        path = self._notebook(args)
        run_id = args.run
        if run_id is None:
            newest = api.list_runs(path, store=args.store, limit=1)
            if not newest:
                raise ShownError(f"{_shown(path)} has no runs yet", "%nbops run")
            run_id = newest[0]["id"]
        return RunView(api.get_run(run_id, path=path, store=args.store), store=_store_shown(args, path))

    def _run(self, args: argparse.Namespace) -> None:
        from nbops.runtime.context import current  # the lowest layer: what a stage kernel runs

        if current() is not None:  # this kernel IS a stage of a run: running the pipeline here would recurse
            raise ShownError(f"%nbops run inside stage {current().stage!r} of a run would start the pipeline again",
                             "put %nbops cells in a %%skip cell (or tag the cell skip), so the pipeline leaves them out")  # fmt: skip
        path = self._notebook(args)
        notices = saved_version_notices(path, self.log)
        graph = api.graph(path)  # only the stage names, for the rows of the live table
        stages = [] if graph["errors"] else [s["name"] for s in graph["stages"]]
        view = RunProgressView(_shown(path), stages, notices)
        on_created, progress, show_final = self._live(view)
        try:
            result = api.run(
                path, params_file=args.params_file, assignments=args.param, executor=args.executor, jobs=args.jobs,
                no_cache=args.no_cache, store=args.store, address=args.address,
                metric_names=args.metric, progress=progress, context=api.RunContext(on_created=on_created),
            )  # fmt: skip
        except KeyboardInterrupt:
            view.data["status"] = "interrupted"
            if view.data["run_id"]:
                show_final(view)
            run = f"run {view.data['run_id']}" if view.data["run_id"] else "the run"
            raise ShownError(f"{run} was interrupted", "%nbops run again: the stages that finished are reused from the cache") from None
        show_final(RunView(result, notices, store=_store_shown(args, path)))
        return None

    def _live(self, view: RunProgressView) -> tuple[Callable[[str], None], Callable[..., None], Callable[[Any], None]]:
        """(on_created, progress, show the final view). Nothing shows before the run
        exists, so a bad parameter leaves only its error. A kernel draws one display
        when the run starts and redraws it on each event; a terminal prints the
        table once, then a line per event."""
        if _in_kernel(self.shell):
            from IPython.display import display

            handle = None

            def redraw(shown: Any) -> None:
                nonlocal handle
                if handle is None:
                    handle = display(shown, display_id=True)
                else:
                    handle.update(shown)

            view.on_change = redraw
            return view.created, view, redraw

        def created(run_id: str) -> None:
            view.created(run_id)
            print(view.text(), flush=True)

        def progress(event: str, stage: str, info: dict) -> None:
            view(event, stage, info)
            if stage:
                print(view.line(stage), flush=True)

        return created, progress, lambda final: print(final.text(), flush=True)
