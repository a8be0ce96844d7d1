"""The options every command that runs a pipeline shares, written once.

``nbops run``, ``resume``/``rerun``, ``test`` and ``sweep`` take the same
parameter, executor and store flags; each asks here for the groups it needs,
so a flag reads and behaves the same in every command. ``--store`` and
``--objects`` come from ``add_store_options`` wherever a command takes a store.
"""

from __future__ import annotations

import argparse

__all__ = ["add_run_options", "add_store_options", "positive_int", "STORE_HELP", "OBJECTS_HELP"]

STORE_HELP = (
    "run store: a folder (SQLite) or a postgresql://USER@HOST:PORT/DB URL "
    "(default: $NBOPS_STORE, then nbops.toml or [tool.nbops] in pyproject.toml found upward, then .nbops beside the notebook)"
)
OBJECTS_HELP = (
    "where the store keeps its objects: a folder or an fsspec URL (s3://BUCKET/PREFIX, gs://, az://, file:///shared) "
    "(default: $NBOPS_OBJECTS, then nbops.toml / [tool.nbops], then objects/ in the store)"
)


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
        add_store_options(p)
    if as_json:
        p.add_argument("--json", action="store_true", help="print the result as JSON")


def add_store_options(p: argparse.ArgumentParser, *, store_help: str = STORE_HELP, store_group: argparse._ActionsContainer | None = None) -> None:
    """``--store`` (into ``store_group`` when it is one of a mutually exclusive pair) and ``--objects``.
    ``main`` hands ``--objects`` to the settings resolver through $NBOPS_OBJECTS, so kernels and subprocesses see it too."""
    (store_group or p).add_argument("--store", help=store_help)
    p.add_argument("--objects", metavar="URL", help=OBJECTS_HELP)
