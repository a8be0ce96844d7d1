"""``nbops store verify|gc|info|migrate|copy``: check, clean, describe, upgrade a run store; copy runs between stores."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from nbops.cli.options import add_store_options
from nbops.errors import StoreError, UsageError

__all__ = ["register", "parse_age"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def register(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    store = subparsers.add_parser("store", help="verify, garbage-collect, describe or upgrade the run store; copy runs between stores")
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
    p = actions.add_parser("info", help="where the store is (kind, location, objects), its layout version, counts and size")
    _where(p)
    p = actions.add_parser("migrate", help="bring the store to the newest layout (under a lock: one process migrates, the others wait)")
    _where(p)
    p = actions.add_parser(
        "copy",
        help="copy runs and every object they reference from one store to another (e.g. a laptop's runs to the team store)",
        description="Objects are copied before the records that reference them; runs and objects DST already has are skipped, "
        "so copying again copies nothing. A folder store's objects are its objects/ folder; a postgresql:// store's objects "
        "are those of its settings ($NBOPS_OBJECTS, nbops.toml / [tool.nbops]) unless --from-objects / --to-objects say.",
    )
    p.add_argument("src", metavar="SRC", help="the store to copy from: a folder or a postgresql:// URL")
    p.add_argument("dst", metavar="DST", help="the store to copy to: a folder (made when missing) or a postgresql:// URL")
    p.add_argument("--runs", nargs="+", metavar="ID", help="only these runs (ids, latest, latest~N of SRC; default: every run)")
    p.add_argument("--from-objects", metavar="URL", help="the objects of SRC (a folder or an fsspec URL)")
    p.add_argument("--to-objects", metavar="URL", help="the objects of DST (a folder or an fsspec URL)")
    p.add_argument("--json", action="store_true")
    return {"store": _cmd_store}


def _where(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    add_store_options(p, store_group=group)
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

    if a.store_command == "copy":
        return _cmd_copy(a)
    if a.store_command == "gc" and a.keep_last is not None and a.keep_last < 0:
        raise UsageError("--keep-last must be 0 or more", "e.g. --keep-last 10")
    rs = open_store(a.store, a.notebook or ".", create=False)  # opening migrates (under the lock), so 'migrate' only reports
    if a.store_command == "migrate":
        layout = rs.schema_version()
        migrated = rs.migrated_from is not None
        result = {"store": rs.location, "kind": rs.kind, "from": _layout(rs.migrated_from) if migrated else layout, "to": layout, "migrated": migrated}
        if a.json:
            render.print_json(result)
        elif not result["migrated"]:
            render.console.print(render.escape(f"the run store {result['store']} already has the newest layout ({result['to']})"))
        else:
            was = "an empty database" if result["from"] is None else f"layout {result['from']}"
            render.console.print(render.escape(f"migrated the run store {result['store']} from {was} to layout {result['to']}"))
        return 0
    if a.store_command == "info":
        result = maintenance.info(rs)
        if a.json:
            render.print_json(result)
        else:
            render.console.print(render.escape(f"store {result['store']} (layout version {result['schema_version']})"))
            render.console.print(render.escape(f"  kind {result['kind']}, objects in {result['objects_location']}"))
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


def _layout(revision: str | None) -> int | None:
    """An Alembic revision ("0003") as the layout number users see; None for an empty database (or no migration)."""
    return int(revision) if revision and revision.isdigit() else None


def _cmd_copy(a: argparse.Namespace) -> int:
    from nbops.cli import render
    from nbops.report import resolve_run_id
    from nbops.store.copy import copy_runs

    src = _copy_end(a.src, a.from_objects, create=False)
    dst = _copy_end(a.dst, a.to_objects, create=True)
    if src.location == dst.location and src.describe()["objects"] == dst.describe()["objects"]:
        raise UsageError(f"SRC and DST are the same store ({src.location})", "name two different stores")
    if dst.is_database and not dst.objects.shared:
        render.err_console.print(render.escape(f"nbops: warning: the objects of {dst.location} are the local folder {dst.objects.location}: "
                                               "others reading this store will not find them\n  fix: --to-objects URL (or NBOPS_OBJECTS, nbops.toml)"))  # fmt: skip
    # latest / latest~N mean what they mean to 'nbops runs show --store SRC'.
    run_ids = [resolve_run_id(r, store=a.src) for r in a.runs] if a.runs else None
    result = copy_runs(src, dst, run_ids)
    render.print_json(result) if a.json else _copy_text(result)
    if result["problems"]:
        render.err_console.print(render.escape(f"nbops: some runs were not copied\n  fix: nbops store verify --store {result['from']}"))
        return StoreError.exit_code
    return 0


def _copy_text(result: dict) -> None:
    from nbops.cli.render import console, counted, err_console, escape

    where = f"from {result['from']} to {result['to']}"
    if result["runs_copied"] or result["objects_copied"]:
        runs = f"{counted(len(result['runs_copied']), 'run')} ({counted(result['stages_copied'], 'stage record')})"
        console.print(escape(f"copied {runs}, {counted(result['objects_copied'], 'object')} ({_bytes(result['bytes'])}) {where}"))
    else:
        console.print(escape(f"nothing to copy {where}"))
    if result["runs_present"] or result["objects_present"]:
        console.print(f"  already there: {counted(len(result['runs_present']), 'run')}, {counted(result['objects_present'], 'object')}")
    if result["runs_running"]:
        console.print(f"  still running, not copied: {', '.join(result['runs_running'])}")
    for p in result["problems"]:
        err_console.print(escape(f"  run {p['run']} not copied: object {p['digest'][:12]} is {p['problem']} in {result['from']}"))


def _copy_end(where: str, objects: str | None, *, create: bool):
    """One side of a copy: a folder store keeps its objects in objects/ unless told; a database store follows its settings."""
    from nbops.store import RunStore, resolve_settings

    if objects is None and resolve_settings(where, ".").is_database:
        return RunStore(resolve_settings(where, "."), create=create)
    return RunStore(where, create=create, objects=objects)
