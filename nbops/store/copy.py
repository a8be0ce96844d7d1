"""Copying runs between two open stores (``nbops store copy``): a laptop's runs published to the team store.

Only the store's public interface is used (records through ``RunStore``,
bytes through ``RunStore.objects``), so any pair of backends works: SQLite
folder, PostgreSQL, objects in a folder or at an fsspec URL.

Per run, every object its stages reference is copied *before* its record, so
a copy that stops half way leaves objects nobody references yet (gc removes
them), never a record pointing at a missing object. Objects travel through
a temporary file (``materialize`` then ``put_file(move=True)``): one object
at a time, never in memory. Objects the destination already has (one cheap
``check``) and runs it already holds are skipped, so a second copy copies
nothing. Cache keys are content only: copied stages serve the cache of the
destination as they did in the source.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from nbops.errors import CorruptObjectError
from nbops.runtime.files import digest_matches
from nbops.status import RUNNING
from nbops.store.maintenance import references
from nbops.store.run_store import RunStore

__all__ = ["copy_runs"]


def copy_runs(src: RunStore, dst: RunStore, run_ids: list[str] | None = None) -> dict[str, Any]:
    """Copy ``run_ids`` (default: every run) with their objects from ``src`` to ``dst``.

    Runs ``dst`` already holds and runs still running are skipped; a run with
    a missing or corrupt object in ``src`` is not copied and is listed under
    ``problems`` (``nbops store verify`` on the source names them all)."""
    dst.check_writable()  # before any object is written: a refused copy leaves nothing behind
    src.mark_interrupted()  # a run whose driver died is copied as interrupted, not as running forever
    rows = {r["id"]: r for r in src.run_rows()}
    wanted = list(dict.fromkeys(run_ids)) if run_ids is not None else sorted(rows)  # oldest first: ids start with the time
    there = {r["id"] for r in dst.run_rows()}
    result: dict[str, Any] = {
        "from": src.location, "to": dst.location, "runs_copied": [], "runs_present": [], "runs_running": [],
        "stages_copied": 0, "objects_copied": 0, "objects_present": 0, "bytes": 0, "problems": [],
    }  # fmt: skip
    todo = []
    for run_id in wanted:
        if run_id not in rows:
            src.get_run(run_id)  # raises NotFoundError, naming the source store
        if run_id in there:
            result["runs_present"].append(run_id)
        elif rows[run_id]["status"] == RUNNING:
            result["runs_running"].append(run_id)
        else:
            todo.append(run_id)
    refs = references(src, set(todo)) if todo else {}
    by_run: dict[str, dict[str, int | None]] = {}
    for digest, users in refs.items():
        for ref in users:
            by_run.setdefault(ref["run"], {})[digest] = ref["bytes"]
    done: set[str] = set()  # objects settled in this copy (shared by runs: checked once)
    with tempfile.TemporaryDirectory(prefix=".nbops-copy-", dir=_scratch(dst)) as tmp:
        for run_id in todo:
            try:
                for digest, size in sorted(by_run.get(run_id, {}).items()):
                    if digest not in done:
                        _copy_object(src, dst, digest, size, Path(tmp), result)
                        done.add(digest)
            except CorruptObjectError as exc:
                result["problems"].append({"run": run_id, "digest": exc.digest, "problem": exc.problem})
                continue
            run = src.get_run(run_id)
            if dst.import_run(run):
                result["runs_copied"].append(run_id)
                result["stages_copied"] += len(run["stages"])
            else:  # another copy got there first
                result["runs_present"].append(run_id)
    return result


def _copy_object(src: RunStore, dst: RunStore, digest: str, size: int | None, tmp: Path, result: dict[str, Any]) -> None:
    if dst.objects.check(digest, size) is None:
        result["objects_present"] += 1
        return
    staged = tmp / digest
    src.objects.materialize(digest, staged, size)
    nbytes = staged.stat().st_size
    # A folder's materialize checks the size only: damaged bytes must not enter the destination under a good name.
    if not digest_matches(staged, digest):
        raise CorruptObjectError(digest, "damaged (its bytes no longer hash to its name)")
    dst.objects.put_file(staged, move=True, digest=digest)
    staged.unlink(missing_ok=True)
    result["objects_copied"] += 1
    result["bytes"] += nbytes


def _scratch(dst: RunStore) -> str | None:
    """Beside an embedded destination's objects (a rename, not a second copy, stores them); else the system temp folder."""
    if dst.is_database or not dst.root.is_dir():
        return None
    return os.fspath(dst.root)
