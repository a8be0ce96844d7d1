"""Keeping a run store trustworthy and small: verify, gc, info.

Every function takes an open ``RunStore`` and returns a plain dict (what the
CLI prints, or ``--json`` as is). An object is "referenced" by a stage record
through its executed notebook (``notebook_sha256``), its outputs
(``outputs.*.sha256``) and its logged artifacts (``artifacts[].sha256``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nbops.runtime.files import sha256_file
from nbops.store.run_store import RUN_ID_RE, RunStore

__all__ = ["references", "verify", "gc", "info", "GRACE_S"]

# Objects and run folders younger than this are never collected: a run in
# progress stores its objects a moment before it records the stage that
# references them.
GRACE_S = 3600.0


def _stage_refs(stage: dict[str, Any]) -> Iterator[tuple[str, str, int | None]]:
    """(digest, what, expected size) for every object a stage record points at."""
    if stage.get("notebook_sha256"):
        yield stage["notebook_sha256"], "executed notebook", None
    for var, meta in sorted((stage.get("outputs") or {}).items()):
        if isinstance(meta, dict) and meta.get("sha256"):
            yield meta["sha256"], f"output {var}", meta.get("bytes")
    for art in stage.get("artifacts") or []:
        if isinstance(art, dict) and art.get("sha256"):
            yield art["sha256"], f"artifact {art.get('name') or art.get('file')}", art.get("bytes")


def _stages(store: RunStore, run_ids: set[str] | None = None) -> list[dict[str, Any]]:
    with store._conn() as c:
        rows = c.execute("SELECT run_id, name, notebook_sha256, outputs, artifacts FROM stages").fetchall()
    out = []
    for row in rows:
        if run_ids is None or row["run_id"] in run_ids:
            out.append({"run_id": row["run_id"], "name": row["name"], "notebook_sha256": row["notebook_sha256"],
                        "outputs": json.loads(row["outputs"] or "{}"), "artifacts": json.loads(row["artifacts"] or "[]")})  # fmt: skip
    return out


def references(store: RunStore, run_ids: set[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """digest -> [{run, stage, what, bytes}] over every stage record (or those of ``run_ids``)."""
    refs: dict[str, list[dict[str, Any]]] = {}
    for stage in _stages(store, run_ids):
        for digest, what, size in _stage_refs(stage):
            refs.setdefault(digest, []).append({"run": stage["run_id"], "stage": stage["name"], "what": what, "bytes": size})
    return refs


def _objects_on_disk(store: RunStore) -> Iterator[tuple[str, Path]]:
    root = store.objects.root
    if not root.is_dir():
        return
    for sub in sorted(root.iterdir()):
        if len(sub.name) != 2 or not sub.is_dir():
            continue  # tmp/ and anything foreign
        for f in sorted(sub.iterdir()):
            yield sub.name + f.name, f


def verify(store: RunStore, *, repair: bool = False) -> dict[str, Any]:
    """Re-hash every object; report the missing and corrupt ones with the stages that need them.

    ``repair`` removes corrupt objects and marks every stage record that
    referenced a missing or corrupt object ``unusable`` (a JSON note), so
    ``find_cached`` never serves it again and the next run recomputes the stage."""
    refs = references(store)
    problems: list[dict[str, Any]] = []
    checked = total = 0
    for digest, path in _objects_on_disk(store):
        checked += 1
        total += path.stat().st_size
        if sha256_file(path) != digest:
            problems.append({"digest": digest, "problem": "corrupt", "path": str(path), "refs": refs.get(digest, [])})
    for digest, users in sorted(refs.items()):
        if not store.objects.has(digest):
            problems.append({"digest": digest, "problem": "missing", "path": str(store.objects.path(digest)), "refs": users})
    marked: list[dict[str, str]] = []
    if repair:
        for p in problems:
            if p["problem"] == "corrupt":
                Path(p["path"]).unlink(missing_ok=True)
                p["removed"] = True
        marked = _mark_unusable(store, problems)
    return {"store": str(store.root), "objects": checked, "bytes": total, "problems": problems, "repaired": repair, "marked_unusable": marked}


def _mark_unusable(store: RunStore, problems: list[dict[str, Any]]) -> list[dict[str, str]]:
    notes: dict[tuple[str, str], list[str]] = {}
    for p in problems:
        for ref in p["refs"]:
            notes.setdefault((ref["run"], ref["stage"]), []).append(f"{ref['what']} {p['problem']} (object {p['digest'][:12]})")
    now = time.time()
    with store._conn() as c:
        c.execute("BEGIN IMMEDIATE")
        try:
            for (run_id, stage), what in notes.items():
                note = json.dumps({"reason": "; ".join(what), "at": now, "by": "nbops store verify --repair"})
                c.execute("UPDATE stages SET unusable = ? WHERE run_id = ? AND name = ?", (note, run_id, stage))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
    return [{"run": r, "stage": s, "reason": "; ".join(w)} for (r, s), w in sorted(notes.items())]


def _kept_runs(runs: list[Any], older_than_s: float | None, keep_last: int | None, now: float) -> set[str]:
    """Runs newest first. A run goes only when it is older than ``older_than_s`` (when given)
    and not among the ``keep_last`` newest (when given); running runs always stay."""
    if older_than_s is None and keep_last is None:
        return {r["id"] for r in runs}
    kept = set()
    for i, r in enumerate(runs):
        young = older_than_s is not None and (r["started_at"] or now) > now - older_than_s
        recent = keep_last is not None and i < keep_last
        if young or recent or r["status"] == "running":
            kept.add(r["id"])
    return kept


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def gc(store: RunStore, *, older_than_s: float | None = None, keep_last: int | None = None, dry_run: bool = False, grace_s: float = GRACE_S) -> dict[str, Any]:
    """Remove the runs the policy lets go (records and folders), then every object
    and run folder that no kept run references. Objects and folders younger than
    ``grace_s`` stay (a run may be writing them). ``dry_run`` says what, deleting nothing."""
    now = time.time()
    store.mark_interrupted()
    with store._conn() as c:
        runs = c.execute("SELECT id, status, started_at FROM runs ORDER BY started_at DESC, id DESC").fetchall()
    kept = _kept_runs(runs, older_than_s, keep_last, now)
    gone_runs = [r["id"] for r in runs if r["id"] not in kept]
    referenced = references(store, kept)

    objects, object_bytes = [], 0
    for digest, path in _objects_on_disk(store):
        st = path.stat()
        if digest in referenced or now - max(st.st_mtime, st.st_ctime) < grace_s:
            continue
        objects.append(digest)
        object_bytes += st.st_size
    folders, folder_bytes = [], 0
    runs_dir = store.root / "runs"
    known = {r["id"] for r in runs}
    for d in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
        orphan = RUN_ID_RE.match(d.name) and d.name not in known and now - d.stat().st_mtime > grace_s
        if d.name in gone_runs or orphan:
            folders.append(d.name)
            folder_bytes += _size(d)

    if not dry_run:
        with store._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            try:
                for run_id in gone_runs:
                    c.execute("DELETE FROM stages WHERE run_id = ?", (run_id,))
                    c.execute("DELETE FROM runs WHERE id = ?", (run_id,))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
        for digest in objects:
            store.objects.path(digest).unlink(missing_ok=True)
        for name in folders:
            shutil.rmtree(runs_dir / name)
    return {
        "store": str(store.root),
        "dry_run": dry_run,
        "runs_removed": gone_runs,
        "runs_kept": len(kept),
        "objects_removed": objects,
        "object_bytes": object_bytes,
        "folders_removed": folders,
        "folder_bytes": folder_bytes,
        "bytes": object_bytes + folder_bytes,
    }


def info(store: RunStore) -> dict[str, Any]:
    """Where the store is, its layout version, and how much it holds."""
    with store._conn() as c:
        runs = c.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        stages = c.execute("SELECT COUNT(*) FROM stages").fetchone()[0]
        unusable = c.execute("SELECT COUNT(*) FROM stages WHERE unusable IS NOT NULL").fetchone()[0]
    objects = object_bytes = 0
    for _, path in _objects_on_disk(store):
        objects += 1
        object_bytes += path.stat().st_size
    db_bytes = sum(os.path.getsize(p) for p in store.root.glob("runs.db*"))
    return {
        "store": str(store.root),
        "schema_version": store.schema_version(),
        "runs": runs,
        "stages": stages,
        "unusable_stages": unusable,
        "objects": objects,
        "object_bytes": object_bytes,
        "db_bytes": db_bytes,
        "total_bytes": _size(store.root),
    }
