"""``nbops report RUN -o report.html``: one self-contained HTML page for a run."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from nbops.cli.options import add_store_options

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = subparsers.add_parser(
        "report",
        help="write one HTML page for a run: summary, parameters, metrics, checks, executed stage notebooks",
    )
    p.add_argument("run", metavar="RUN", help="a run id, or 'latest' for the newest run in the store")
    p.add_argument("-o", "--output", required=True, metavar="HTML", help="where to write the page")
    p.add_argument("--notebook", help="the run's notebook (finds its store)")
    add_store_options(p)
    p.add_argument("--plotlyjs", choices=("inline", "cdn"), default="inline",
                   help="inline plotly.js in the page (readable offline; default) or load it from its CDN")  # fmt: skip
    return {"report": _cmd_report}


def _cmd_report(a: argparse.Namespace) -> int:
    from nbops import report
    from nbops.cli import render

    path = report.write_report(a.run, a.output, path=a.notebook, store=a.store, plotlyjs=a.plotlyjs)
    render.console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
