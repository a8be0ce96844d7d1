"""The options every command that runs a pipeline shares, written once.

``nbops run``, ``resume``/``rerun``, ``test`` and ``sweep`` take the same
parameter, executor and store flags; each asks here for the groups it needs,
so a flag reads and behaves the same in every command.
"""

from __future__ import annotations

import argparse

__all__ = ["add_run_options", "positive_int", "STORE_HELP"]

STORE_HELP = "run store folder (default: .nbops beside the notebook, or $NBOPS_STORE)"


def positive_int(text: str) -> int:
    """An argparse type: 1, 2, ... (``--jobs 0`` would run nothing, or hang)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def add_run_options(
    p: argparse.ArgumentParser,
    *,
    params: bool = True,
    params_file: bool = True,
    cache: bool = True,
    metrics: bool = True,
    store: bool = True,
    as_json: bool = True,
    executor_default: str | None = "local",
) -> None:
    """Add the shared run flags to ``p``; each keyword turns one group off."""
    if params:
        p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="set a parameter (repeatable)")
    if params_file:
        p.add_argument("-f", "--params-file", metavar="YAML", help="parameters from a YAML file")
    p.add_argument("--jobs", type=positive_int, metavar="N", help="stages run in parallel (local executor; 1 or more)")
    p.add_argument("--executor", default=executor_default, help="local (default) or ray")
    # The executor resolves a missing address itself ($RAY_ADDRESS, then the recorded cluster).
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, then the cluster 'ray start' recorded)")
    if cache:
        p.add_argument("--no-cache", action="store_true", help="run every stage, reuse nothing")
    if metrics:
        p.add_argument("--metric", action="append", default=[], metavar="NAME", help="record a scalar variable as a metric")
    if store:
        p.add_argument("--store", help=STORE_HELP)
    if as_json:
        p.add_argument("--json", action="store_true", help="print the result as JSON")
