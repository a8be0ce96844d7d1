"""Keeping a run store trustworthy and small: verify, gc, info.

Every function takes an open ``RunStore`` and returns a plain dict (what the
CLI prints, or ``--json`` as is). An object is "referenced" by a stage record
through its executed notebook (``notebook_sha256``), its outputs
(``outputs.*.sha256``) and its logged artifacts (``artifacts[].sha256``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def references(store: RunStore, run_ids: set[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """digest -> [{run, stage, what, bytes}] over every stage record (or those of ``run_ids``)."""
    refs: dict[str, list[dict[str, Any]]] = {}
    for stage in store.stage_refs(run_ids):
        for digest, what, size in _stage_refs(stage):
            refs.setdefault(digest, []).append({"run": stage["run_id"], "stage": stage["name"], "what": what, "bytes": size})
    return refs


def verify(store: RunStore, *, repair: bool = False) -> dict[str, Any]:
    """Re-hash every object; report the missing and corrupt ones with the stages that need them.

    ``repair`` removes corrupt objects and marks every stage record that
    referenced a missing or corrupt object ``unusable`` (a JSON note), so
    ``find_cached`` never serves it again and the next run recomputes the stage."""
    refs = references(store)
    problems: list[dict[str, Any]] = []
    checked = total = 0
    present = set()
    for digest, size in store.objects.digests():
        checked += 1
        total += size
        present.add(digest)
        if not store.objects.verify(digest):
            problems.append({"digest": digest, "problem": "corrupt", "path": _where(store, digest), "refs": refs.get(digest, [])})
    for digest, users in sorted(refs.items()):
        if digest not in present:
            problems.append({"digest": digest, "problem": "missing", "path": _where(store, digest), "refs": users})
    marked: list[dict[str, str]] = []
    if repair:
        for p in problems:
            if p["problem"] == "corrupt":
                store.objects.delete(p["digest"])
                p["removed"] = True
        marked = _mark_unusable(store, problems)
    return {"store": store.location, "objects": checked, "bytes": total, "problems": problems, "repaired": repair, "marked_unusable": marked}


def _mark_unusable(store: RunStore, problems: list[dict[str, Any]]) -> list[dict[str, str]]:
    notes: dict[tuple[str, str], list[str]] = {}
    for p in problems:
        for ref in p["refs"]:
            notes.setdefault((ref["run"], ref["stage"]), []).append(f"{ref['what']} {p['problem']} (object {p['digest'][:12]})")
    now = time.time()
    store.mark_unusable({key: {"reason": "; ".join(what), "at": now, "by": "nbops store verify --repair"} for key, what in notes.items()})
    return [{"run": r, "stage": s, "reason": "; ".join(w)} for (r, s), w in sorted(notes.items())]


def _where(store: RunStore, digest: str) -> str:
    path = getattr(store.objects, "path", None)
    return str(path(digest)) if path else f"{store.objects.location}/{digest[:2]}/{digest[2:]}"


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
    runs = store.run_rows()
    kept = _kept_runs(runs, older_than_s, keep_last, now)
    gone_runs = [r["id"] for r in runs if r["id"] not in kept]
    referenced = references(store, kept)

    objects, object_bytes = [], 0
    for digest, size in store.objects.digests():
        if digest in referenced or store.objects.age_s(digest) < grace_s:
            continue
        objects.append(digest)
        object_bytes += size
    folders, folder_bytes = [], 0
    runs_dir = store.root / "runs"
    known = {r["id"] for r in runs}
    for d in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
        orphan = RUN_ID_RE.match(d.name) and d.name not in known and now - d.stat().st_mtime > grace_s
        if d.name in gone_runs or orphan:
            folders.append(d.name)
            folder_bytes += _size(d)

    if not dry_run:
        store.delete_runs(gone_runs)
        for digest in objects:
            store.objects.delete(digest)
        for name in folders:
            shutil.rmtree(runs_dir / name)
    return {
        "store": store.location,
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
    counts = store.counts()
    objects = object_bytes = 0
    for _, size in store.objects.digests():
        objects += 1
        object_bytes += size
    db_bytes = sum(os.path.getsize(p) for p in store.root.glob("runs.db*"))
    return {
        "store": store.location,
        "kind": store.kind,
        "objects_location": store.describe()["objects"],
        "schema_version": store.schema_version(),
        **counts,
        "objects": objects,
        "object_bytes": object_bytes,
        "db_bytes": db_bytes,
        "total_bytes": _size(store.root),
    }
