"""Fingerprints of what a stage read, and what changed since (the cache's data and code part).

The stage kernel records the files, folders, remote objects, local modules and
packages it used (``nbops.runtime.reads``). After the stage the driver turns
those records into deps with ``deps_from_records`` and keeps them with the
stage's cache record; before reusing that record it asks ``changed_deps``, which
re-checks each dep now. A file's sha256 is remembered by (path, size, mtime,
inode) in ``HashMemo``, so an unchanged tree of 10,000 files costs 10,000
``stat`` calls and one SQLite query.

A remote source that cannot be re-checked now (no network, no credentials,
no version field) counts as changed: reusing a result silently when we cannot
tell is the one wrong answer. The detail says so. ``unseen`` sources (a SQL
query, an HTTP call) never invalidate; the run reports them instead.

A team shares one store, so a record made in one checkout is checked in
another: a dep names where it is *relative to the notebook's folder* (``path``),
never the absolute path of the checkout that recorded it, and ``changed_deps``
looks for it beside the notebook being run now. Checking the recorder's copy
instead would reuse a result although this checkout's data differs. Only a file
the stage named by an absolute path outside that folder (``/shared/data.csv``)
keeps its absolute path: every checkout reads that very file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from nbops.plan.environment import installed_packages  # noqa: F401  (one listing of the packages, re-exported)
from nbops.runtime.files import sha256_file
from nbops.runtime.reads import remote_fingerprint

__all__ = ["HashMemo", "deps_from_records", "changed_deps", "installed_packages", "unseen_note", "INPUT", "CODE", "ENV"]

INPUT, CODE, ENV = "input", "code", "env"
# A file modified this recently may change again within the same mtime tick
# ("racily clean", as git calls it): hash it, but do not remember the hash.
_RACY_SECONDS = 2.0


class HashMemo:
    """sha256 of files, remembered by (abspath, size, mtime_ns, ctime_ns, inode) in SQLite.

    As git's index: a file whose stat is the remembered one is taken as unchanged; any
    other is hashed again. Every write changes the mtime and the ctime, a replaced file
    has another inode, and the ctime cannot be set back (``touch -d``, ``cp -p``,
    ``rsync -t`` restore the mtime only), so a content change is never taken as unchanged.
    Hashes of files changed within the last ``_RACY_SECONDS`` are not remembered."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS hashes (abspath TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, inode INTEGER, sha256 TEXT NOT NULL)")
            if "ctime_ns" not in {row[1] for row in db.execute("PRAGMA table_info(hashes)")}:
                # A memo written before the ctime was kept: its rows match no stat now, each file is hashed once more.
                try:
                    db.execute("ALTER TABLE hashes ADD COLUMN ctime_ns INTEGER")
                except sqlite3.OperationalError:  # another process added it first
                    pass

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def sha256(self, abspath: str) -> str | None:
        return self.sha256_many([abspath])[abspath]

    def sha256_many(self, abspaths: Iterable[str]) -> dict[str, str | None]:
        """abspath -> sha256 (None when the file does not exist now)."""
        stats: dict[str, os.stat_result] = {}
        result: dict[str, str | None] = {}
        for p in dict.fromkeys(abspaths):
            try:
                st = os.stat(p)
            except (FileNotFoundError, NotADirectoryError):
                result[p] = None
                continue
            if not stat.S_ISREG(st.st_mode):
                result[p] = None
                continue
            stats[p] = st
        if not stats:
            return result
        with self._lock, self._connect() as db:
            rows = db.execute(
                "SELECT abspath, size, mtime_ns, ctime_ns, inode, sha256 FROM hashes WHERE abspath IN (SELECT value FROM json_each(?))",
                (json.dumps(list(stats)),),
            ).fetchall()
            known = {r[0]: r[1:] for r in rows}
            fresh = []
            now = time.time_ns()
            for p, st in stats.items():
                row = known.get(p)
                if row is not None and row[:4] == (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino):
                    result[p] = row[4]
                    continue
                result[p] = sha256_file(p)
                if now - st.st_mtime_ns > _RACY_SECONDS * 1e9:
                    fresh.append((p, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, result[p]))
            if fresh:
                db.executemany("INSERT OR REPLACE INTO hashes (abspath, size, mtime_ns, ctime_ns, inode, sha256) VALUES (?, ?, ?, ?, ?, ?)", fresh)
        return result


def deps_from_records(records: list[dict], cwd: str, memo: HashMemo) -> list[dict]:
    """The kernel's ``reads`` records as deps with fingerprints, one per ``key``, sorted.
    ``cwd``: the notebook's folder, which the paths in the deps are relative to."""
    files = [r["abspath"] for r in records if r.get("kind") in ("file", "module")]
    dirs = [r["abspath"] for r in records if r.get("kind") == "dir"]
    listings = {d: _listing(d) for d in dict.fromkeys(dirs)}
    hashes = memo.sha256_many(files + [f for names in listings.values() for f in _listed_files(names)])
    deps: dict[str, dict] = {}
    for r in records:
        kind = r.get("kind")
        if kind == "file":
            p = r["abspath"]
            where = _where(p, r.get("path"), cwd)
            deps[f"file:{where}"] = {"kind": "file", "key": f"file:{where}", "path": where, "size": _size(p), "sha256": hashes[p]}
        elif kind == "dir":
            p = r["abspath"]
            where = _where(p, None, cwd)
            count, digest = _listing_digest(listings[p], hashes)
            deps[f"dir:{where}"] = {"kind": "dir", "key": f"dir:{where}", "path": where, "count": count, "listing_sha256": digest}
        elif kind == "module":
            p = r["abspath"]
            deps[f"module:{r['name']}"] = {"kind": "module", "key": f"module:{r['name']}", "name": r["name"], "path": _where(p, None, cwd), "sha256": hashes[p]}
        elif kind == "remote":
            found = {k: r[k] for k in r if k not in ("kind", "url", "error")}
            fingerprint = found or remote_fingerprint(r["url"])[0]
            deps[f"remote:{r['url']}"] = {"kind": "remote", "key": f"remote:{r['url']}", "url": r["url"], "fingerprint": fingerprint}
        elif kind == "unseen":
            deps[f"unseen:{r['what']}"] = {"kind": "unseen", "key": f"unseen:{r['what']}", "what": r["what"]}
        elif kind == "feature":  # a feature table read as NAME:latest: the version it was then
            deps[f"feature:{r['name']}"] = {"kind": "feature", "key": f"feature:{r['name']}", "name": r["name"], "version": r["version"], "sha256": r["sha256"]}
        elif kind == "packages":
            for name, version in r.get("versions", {}).items():
                deps[f"package:{_normal(name)}"] = {"kind": "package", "key": f"package:{_normal(name)}", "name": name, "version": version}
    return [deps[k] for k in sorted(deps)]


def changed_deps(
    deps: list[dict], cwd: str, memo: HashMemo, current_packages: Mapping[str, str], latest_feature: Callable[[str], dict | None] | None = None
) -> list[dict]:
    """What differs now from the recorded ``deps``: ``[{"kind", "detail"}]``; empty = still valid.

    ``cwd`` is the folder of the notebook being run now: a relative ``path`` is
    looked for there, whichever checkout recorded the dep. ``latest_feature(name)``
    is the newest version of a feature table in the store (None: no such table)."""
    located = {id(d): _located(d, cwd) for d in deps if d["kind"] in ("file", "dir", "module")}
    listings = {located[id(d)]: _listing(located[id(d)]) for d in deps if d["kind"] == "dir"}
    files = [located[id(d)] for d in deps if d["kind"] in ("file", "module")]
    hashes = memo.sha256_many(files + [f for names in listings.values() for f in _listed_files(names)])
    packages = {_normal(name): version for name, version in current_packages.items()}
    changes = []
    for d in deps:
        kind = d["kind"]
        if kind == "file":
            detail = _file_change(d["path"], d["sha256"], hashes[located[id(d)]])
            if detail:
                changes.append({"kind": INPUT, "detail": detail})
        elif kind == "dir":
            count, digest = _listing_digest(listings[located[id(d)]], hashes)
            if digest != d["listing_sha256"]:
                what = "was deleted" if digest is None else ("appeared" if d["listing_sha256"] is None else f"changed ({d['count']} → {count} entries)")
                changes.append({"kind": INPUT, "detail": f"folder {d['path']} {what}"})
        elif kind == "module":
            now = hashes[located[id(d)]]
            if now != d["sha256"]:
                what = "was deleted" if now is None else "changed"
                changes.append({"kind": CODE, "detail": f"module {d['name']} ({d['path']}) {what}"})
        elif kind == "remote":
            now, error = remote_fingerprint(d["url"])
            if now is None:
                changes.append({"kind": INPUT, "detail": f"{d['url']} cannot be re-checked ({error}); running again to be safe"})
            elif now != d["fingerprint"]:
                changes.append({"kind": INPUT, "detail": f"{d['url']} changed ({_short_fp(d['fingerprint'])} → {_short_fp(now)})"})
        elif kind == "feature":
            now = latest_feature(d["name"]) if latest_feature is not None else None
            if now is None or now["sha256"] != d["sha256"]:
                after = f"v{now['version']}" if now else "gone"
                changes.append({"kind": INPUT, "detail": f"feature table {d['name']}:latest moved v{d['version']} → {after}"})
        elif kind == "package":
            now = packages.get(_normal(d["name"]))
            if now is None:
                changes.append({"kind": ENV, "detail": f"{d['name']} {d['version']} is no longer installed"})
            elif now != d["version"]:
                changes.append({"kind": ENV, "detail": f"{d['name']} {d['version']} → {now}"})
    return changes


def unseen_note(deps: list[dict], reused: bool) -> str | None:
    """What to say about a stage that read a source nbops cannot fingerprint (a query, an API
    call): above all when its result is reused, which is when it may be stale."""
    unseen = sorted({d["what"] for d in deps if d.get("kind") == "unseen"})
    if not unseen:
        return None
    state = "this cached result may be stale" if reused else "a cached result of it may be stale later"
    return f"read from {', '.join(unseen)}, which nbops cannot fingerprint: {state}; tag the stage cache:off, or name a version with nbops.input(...)"


def _file_change(shown: str, before: str | None, now: str | None) -> str | None:
    if before == now:
        return None
    if now is None:
        return f"{shown} was deleted"
    if before is None:
        return f"{shown} appeared"
    return f"{shown} changed (sha256 {before[:8]} → {now[:8]})"


Listing = list[tuple[str, str | None]]  # (name, abspath of a file | None for a folder)


def _listing(folder: str) -> Listing | None:
    """A folder's entries, sorted by name; None when the folder is gone."""
    try:
        with os.scandir(folder) as it:
            return sorted((e.name, e.path if e.is_file() else None) for e in it)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _listed_files(listing: Listing | None) -> list[str]:
    return [] if listing is None else [path for _, path in listing if path is not None]


def _listing_digest(listing: Listing | None, hashes: Mapping[str, str | None]) -> tuple[int, str | None]:
    """Names and each file's content hash: a new or edited file in the folder changes it."""
    if listing is None:
        return 0, None
    h = hashlib.sha256()
    for name, path in listing:
        h.update(f"{name}\t{'<dir>' if path is None else hashes.get(path)}\n".encode())
    return len(listing), h.hexdigest()


def _where(abspath: str, named: str | None, cwd: str) -> str:
    """Where a dep is, as every checkout finds it: relative to the notebook's folder ``cwd``,
    unless the stage ``named`` an absolute path outside that folder (that very file, for everyone).

    The name the stage used wins when it still leads to the file from the notebook's folder
    (a symlink in the checkout is followed anew in each checkout). Relative even outside the
    folder (``../data/x.csv``, a module in ``../src``): another checkout reads its own copy
    there; at worst nothing is there and the stage runs again, never reused on the strength
    of a file the checkout being run does not read."""
    home = os.path.abspath(cwd)
    if named:
        as_named = os.path.normpath(os.path.join(home, named))  # an absolute ``named`` stays as it is
        if os.path.realpath(as_named) == abspath:  # named from the notebook's folder (no chdir since)
            return as_named if os.path.isabs(named) and not _inside(as_named, home) else os.path.relpath(as_named, home)
    real_home = os.path.realpath(cwd)
    for base in dict.fromkeys((real_home, home)):
        if _inside(abspath, base):
            return os.path.relpath(abspath, base)
    if named and os.path.isabs(named):
        return abspath
    return os.path.relpath(abspath, real_home)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _located(dep: Mapping, cwd: str) -> str:
    """The absolute path to check a file, folder or module dep at now. Records made before
    paths were relative carry ``abspath`` too; their ``path`` was already relative to the
    notebook's folder when inside it, so both kinds are found beside the notebook run now."""
    path = dep.get("path") or dep["abspath"]
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(cwd, path))


def _size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _short_fp(fp: Mapping[str, str] | None) -> str:
    if not fp:
        return "none"
    key = next((k for k in ("ETag", "etag", "VersionId", "version_id", "generation") if k in fp), next(iter(fp)))
    return f"{key} {str(fp[key])[:12]}"


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
