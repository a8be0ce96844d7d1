"""``nbops store verify|gc|info``: check, clean and describe a run store."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from nbops.cli.options import STORE_HELP
from nbops.errors import StoreError, UsageError

__all__ = ["register", "parse_age"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def register(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    store = subparsers.add_parser("store", help="verify, garbage-collect or describe the run store")
    actions = store.add_subparsers(dest="store_command", metavar="ACTION")
    actions.required = True
    p = actions.add_parser("verify", help="re-hash every object; name the runs and stages whose objects are missing or corrupt")
    p.add_argument("--repair", action="store_true", help="remove corrupt objects and stop reusing the stages that needed them (the next run recomputes them)")
    _where(p)
    p = actions.add_parser("gc", help="remove old runs by policy, and objects and run folders no kept run references")
    p.add_argument("--older-than", type=parse_age, metavar="AGE", help="runs started longer ago than AGE may go (30d, 12h, 2w)")
    p.add_argument("--keep-last", type=int, metavar="N", help="always keep the N newest runs")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed and how many bytes; remove nothing")
    _where(p)
    p = actions.add_parser("info", help="where the store is, its layout version, counts and size")
    _where(p)
    return {"store": _cmd_store}


def _where(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--store", help=STORE_HELP)
    group.add_argument("--notebook", help="the store beside this notebook")
    p.add_argument("--json", action="store_true")


def parse_age(text: str) -> float:
    """``30d`` -> seconds (s, m, h, d, w)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text or "")
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age: use a number and a unit, e.g. 30d, 12h, 2w")
    return float(m[1]) * _UNITS[m[2]]


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _cmd_store(a: argparse.Namespace) -> int:
    from nbops.cli import render
    from nbops.store import maintenance, open_store

    if a.store_command == "gc" and a.keep_last is not None and a.keep_last < 0:
        raise UsageError("--keep-last must be 0 or more", "e.g. --keep-last 10")
    rs = open_store(a.store, a.notebook or ".", create=False)
    if a.store_command == "info":
        result = maintenance.info(rs)
        if a.json:
            render.print_json(result)
        else:
            render.console.print(render.escape(f"store {result['store']} (layout version {result['schema_version']})"))
            render.console.print(f"  {result['runs']} runs, {result['stages']} stage records ({result['unusable_stages']} unusable for the cache)")
            render.console.print(f"  {result['objects']} objects, {_bytes(result['object_bytes'])}; {_bytes(result['total_bytes'])} in all")
        return 0
    if a.store_command == "gc":
        result = maintenance.gc(rs, older_than_s=a.older_than, keep_last=a.keep_last, dry_run=a.dry_run)
        if a.json:
            render.print_json(result)
        else:
            verb = "would remove" if a.dry_run else "removed"
            render.console.print(f"{verb} {len(result['runs_removed'])} runs, {len(result['objects_removed'])} objects and "
                                 f"{len(result['folders_removed'])} run folders: {_bytes(result['bytes'])}; {result['runs_kept']} runs kept")  # fmt: skip
            for run_id in result["runs_removed"]:
                render.console.print(f"  run {run_id}")
        return 0
    result = maintenance.verify(rs, repair=a.repair)
    if a.json:
        render.print_json(result)
    else:
        render.console.print(f"checked {result['objects']} objects ({_bytes(result['bytes'])}): {len(result['problems'])} problems")
        for p in result["problems"]:
            users = ", ".join(f"run {r['run']} stage {r['stage']} ({r['what']})" for r in p["refs"]) or "no run"
            removed = " — removed" if p.get("removed") else ""
            render.console.print(render.escape(f"  {p['problem']}: object {p['digest'][:12]}{removed}, needed by {users}"))
        for m in result["marked_unusable"]:
            render.console.print(render.escape(f"  run {m['run']} stage {m['stage']}: no longer reused; the next run recomputes it"))
    if result["problems"] and not a.repair:
        render.err_console.print("nbops: the store has missing or corrupt objects\n  fix: nbops store verify --repair")
        return StoreError.exit_code
    return 0
