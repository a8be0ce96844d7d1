"""``nbops models drift MODEL@ALIAS [--since 1d] [--json]``: served inputs against the training data."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["register_action"]


def register_action(actions: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    from nbops.cli.cmd_models import add_where
    from nbops.cli.cmd_store import parse_age

    p = actions.add_parser("drift", help="compare the inputs a service logged with the data the version was trained on")
    p.add_argument("ref", metavar="MODEL@ALIAS", help="MODEL@ALIAS, MODEL@VERSION or MODEL (the latest version)")
    p.add_argument("--since", type=parse_age, metavar="AGE", help="only requests logged in the last AGE (30m, 12h, 1d, 2w)")
    add_where(p)
    p.add_argument("--json", action="store_true")
    return {"drift": _cmd_drift}


def _cmd_drift(a: argparse.Namespace) -> int:
    from nbops.cli import render
    from nbops.cli.cmd_models import where
    from nbops.models import drift

    out = drift(a.ref, since=a.since, **where(a)).to_json()
    render.print_json(out) if a.json else render.model_drift(out)
    return 0
