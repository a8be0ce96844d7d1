"""``nbops why RUN [STAGE]``: why each stage of a run ran or was reused."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from nbops.cli.options import add_store_options

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = subparsers.add_parser(
        "why",
        help="why each stage of a run ran or was reused (code, params, upstream, input, env changed; cached...)",
        description="For each stage of RUN (or only STAGE): its status and the reason, e.g. "
        "'params: n_estimators changed 100 → 50' or 'cached: same code, parameters, inputs and environment as run X'. "
        "Before a run, 'nbops run NOTEBOOK --dry-run' says the same about the run it would make.",
    )
    p.add_argument("run", metavar="RUN", help="a run id, latest, or latest~N")
    p.add_argument("stage", nargs="?", metavar="STAGE", help="only this stage")
    p.add_argument("--notebook", help="the run's notebook (finds its store)")
    add_store_options(p)
    p.add_argument("--json", action="store_true", help="print the reasons as JSON")
    return {"why": _cmd_why}


def _cmd_why(a: argparse.Namespace) -> int:
    from nbops import api
    from nbops.cli import render
    from nbops.cli.main import run_id

    answer = api.why(run_id(a, a.run), a.stage, path=a.notebook, store=a.store)
    render.print_json(answer) if a.json else render.why_text(answer)
    return 0
