"""An embedded run store read and written with the standard library alone.

For the fully cached re-run (``plan/cached_run.py``): importing SQLAlchemy costs
0.2-0.3 s on this machine, alembic another 0.1 s, while deciding and recording
a run whose every stage is reused takes ~10 ms of SQLite. So this module talks
to ``runs.db`` with ``sqlite3``, using the same tables, the same columns and the
same JSON encoding as ``nbops.store.RunStore`` (``tests/runs/test_cached_fast.py``
writes a run both ways and compares the records), and looks at objects with the
same layout as ``nbops.store.objects.ObjectStore``.

It is used only for an embedded store (a folder), whose objects are in that
folder and whose schema is at the newest revision this nbops knows; anything
else is left to ``RunStore`` (``Fallback``).

The helpers marked "as in" are copies of store functions that cannot be imported
without SQLAlchemy today (``nbops/store/__init__.py`` imports ``run_store``,
which imports it at the top); they go once the store offers them without it.
"""

from __future__ import annotations

import getpass
import importlib.util
import json
import os
import secrets
import socket
import sqlite3
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbops
from nbops.text import to_json_text

__all__ = ["Fallback", "LiteStore", "open_lite", "iso", "run_json", "new_run_id", "JSON_RUN", "JSON_STAGE"]

# As in nbops/store/schema.py (the tests compare them).
JSON_RUN = ("params", "env", "git", "error", "report", "trigger")
JSON_STAGE = ("outputs", "scalars", "metrics", "checks", "inputs", "artifacts", "error", "worker", "reason", "key_parts", "deps", "unusable")
_MIGRATIONS = Path(nbops.__file__).resolve().parent / "store" / "migrations" / "versions"


class Fallback(Exception):
    """The fast path cannot be sure; the ordinary path (RunStore, kernels) decides."""


def _store_config():
    """``nbops.store.config`` (settings: --store, NBOPS_STORE, nbops.toml, .nbops/), without running
    ``nbops/store/__init__.py``, which imports SQLAlchemy. config.py imports only the standard
    library and nbops.errors; once the store package is imported, its own module is used."""
    if "nbops.store" in sys.modules:
        from nbops.store import config

        return config
    name = "nbops._store_config_light"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, Path(nbops.__file__).resolve().parent / "store" / "config.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
    return module


def _head() -> str:
    """The newest schema revision this nbops knows (as database._known)."""
    return max(p.stem.split("_")[0].removeprefix("r") for p in _MIGRATIONS.glob("r*.py"))


def iso(ts: float | None) -> str | None:  # as in nbops.store.run_store
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def _proc_start(pid: int) -> str | None:  # as in nbops.store.run_store.proc_start
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _current_user() -> str:  # as in nbops.store.run_store.current_user
    user = os.environ.get("NBOPS_USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"


def new_run_id() -> str:  # as in nbops.store.run_store.new_run_id
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def _dump(fields: dict[str, Any], json_cols: tuple[str, ...]) -> dict[str, Any]:
    return {k: to_json_text(v, sort_keys=True) if k in json_cols and v is not None else v for k, v in fields.items()}


def _load(row: sqlite3.Row, json_cols: tuple[str, ...]) -> dict[str, Any]:
    out = dict(zip(row.keys(), row))
    for k in json_cols:
        if isinstance(out.get(k), str):
            out[k] = json.loads(out[k])
    return out


class _Objects:
    """The cheap check of ``ObjectStore`` (one stat), same layout: ``objects/ab/cdef...``."""

    def __init__(self, root: Path):
        self.root = root

    def check(self, digest: str, size: int | None = None) -> str | None:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise Fallback(f"not a sha256 digest: {digest!r}")
        try:
            actual = os.stat(self.root / digest[:2] / digest[2:]).st_size
        except FileNotFoundError:
            return "missing"
        if size is None or actual == size:
            return None
        return "truncated" if actual < size else "wrong size"


class LiteStore:
    """What ``ReusePlanner`` asks of a store (``root``, ``objects.check``, ``find_cached``),
    and the writes of a run whose every stage was reused."""

    def __init__(self, folder: Path):
        self.root = folder
        self.objects = _Objects(folder / "objects")
        self.db = sqlite3.connect(folder / "runs.db", timeout=60, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA busy_timeout=60000")
        try:
            found = self.db.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            found = None
        if found is None or found[0] != _head():
            self.close()
            raise Fallback("the store needs a migration (or predates them)")

    def close(self) -> None:
        self.db.close()

    def find_cached(self, cache_key: str, limit: int = 20) -> list[dict[str, Any]]:
        """As RunStore.find_cached: successful executions with this key, newest first."""
        rows = self.db.execute(
            "SELECT * FROM stages WHERE cache_key = ? AND status = 'succeeded' AND notebook_sha256 IS NOT NULL AND unusable IS NULL"
            " ORDER BY ended_at DESC LIMIT ?",
            (cache_key, limit),
        ).fetchall()
        found = [_load(r, JSON_STAGE) for r in rows]
        if any(d.get("kind") == "feature" for r in found for d in r.get("deps") or []):
            raise Fallback("a stage read a feature table: its latest version is the feature store's to say")
        return found

    def last_execution(self, *args: Any, **kwargs: Any) -> dict | None:
        raise Fallback("a stage runs: explained and run by the ordinary path")

    def model_known(self, name: str, sha256: str) -> bool:
        """Whether a version of model ``name`` holds these bytes (register_logged skips those)."""
        row = self.db.execute("SELECT 1 FROM model_versions WHERE name = ? AND sha256 = ? LIMIT 1", (name, sha256)).fetchone()
        return row is not None

    def record_run(self, run_id: str, run: dict[str, Any], stages: list[dict[str, Any]]) -> dict[str, Any]:
        """Insert a finished run and its stages in one transaction; returns the record as
        ``RunStore.get_run`` reads it."""
        run = dict(run)
        run.setdefault("user", _current_user())
        run.update(host=socket.gethostname(), pid=os.getpid(), pid_start=_proc_start(os.getpid()), heartbeat=time.time())
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self._insert("runs", {"id": run_id, **_dump(run, JSON_RUN)})
            for stage in stages:
                self._insert("stages", {"run_id": run_id, **_dump(stage, JSON_STAGE)})
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        record = _load(row, JSON_RUN)
        record["stages"] = [_load(s, JSON_STAGE) for s in self.db.execute("SELECT * FROM stages WHERE run_id = ? ORDER BY position", (run_id,))]
        return record

    def _insert(self, table: str, values: dict[str, Any]) -> None:
        columns = ", ".join(f'"{c}"' for c in values)
        self.db.execute(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(values))})", tuple(values.values()))


def open_lite(store: str | os.PathLike | None, near: str | os.PathLike) -> LiteStore:
    """The embedded store for ``near`` as every surface finds it; Fallback for anything else."""
    config = _store_config()
    settings = config.resolve_settings(store, near, None)
    if settings.is_database or settings.objects:
        raise Fallback("a team store or an objects URL")
    folder = Path(settings.store).resolve()
    if folder.name == "runs.db":
        folder = folder.parent
    if not (folder / "runs.db").is_file():
        raise Fallback("no store yet")
    try:
        return LiteStore(folder)
    except sqlite3.Error as exc:
        raise Fallback(f"sqlite: {exc}") from None


def run_json(run: dict[str, Any]) -> dict[str, Any]:
    """As ``nbops.history.run_to_json`` (the tests compare them on the same record)."""
    stages = []
    for s in run.get("stages", []):
        duration = (s["ended_at"] - s["started_at"]) if s.get("ended_at") and s.get("started_at") else None
        stages.append({
            "name": s["name"], "status": s["status"], "started_at": iso(s.get("started_at")), "ended_at": iso(s.get("ended_at")),
            "duration_s": None if duration is None else round(duration, 3), "cache_key": s.get("cache_key"),
            "cached_from": s.get("cached_from"), "metrics": {m["name"]: m["value"] for m in s.get("metrics") or []},
            "metric_history": s.get("metrics") or [], "checks": s.get("checks") or [], "outputs": s.get("outputs") or {},
            "scalars": s.get("scalars") or {}, "inputs": s.get("inputs") or [], "artifacts": s.get("artifacts") or [],
            "error": s.get("error"), "worker": s.get("worker") or {}, "attempts": s.get("attempts"),
            "has_notebook": bool(s.get("notebook_sha256")), "notebook_sha256": s.get("notebook_sha256"),
            "reason": s.get("reason"),  # every stage of a cached run is reused, with its reason
            "data": [{"kind": d["kind"], "path": d.get("path") or d.get("url"), "sha256": d.get("sha256") or d.get("listing_sha256") or d.get("fingerprint")}
                     for d in s.get("deps") or [] if d.get("kind") in ("file", "dir", "remote")],
            "deps": s.get("deps") or [],
        })  # fmt: skip
    ended = run.get("ended_at")
    return {
        "id": run["id"], "status": run["status"], "notebook": run.get("notebook"), "kind": run.get("kind"),
        "user": run.get("user"), "host": run.get("host"), "trigger": run.get("trigger"),
        "parent_id": run.get("parent_id"), "study": run.get("study"), "trial": run.get("trial"),
        "started_at": iso(run.get("started_at")), "ended_at": iso(ended),
        "duration_s": round(ended - run["started_at"], 3) if ended else None,
        "params": run.get("params") or {}, "metrics": _run_metrics(run), "executor": json.loads(run["executor"]),
        "pipeline_dir": run.get("pipeline_dir"), "pipeline_sha256": run.get("pipeline_sha256"),
        "notebook_sha256": run.get("notebook_sha256"), "git": run.get("git"), "env": run.get("env"),
        "stages": stages,
    }  # fmt: skip


def _run_metrics(run: dict[str, Any]) -> dict[str, Any]:  # as nbops.history.run_metrics
    metrics: dict[str, Any] = {}
    steps: dict[str, float] = {}
    for stage in run.get("stages", []):
        for m in stage.get("metrics") or []:
            step = -1 if m.get("step") is None else m["step"]
            if m["name"] not in steps or step >= steps[m["name"]]:
                metrics[m["name"]], steps[m["name"]] = m["value"], step
    for name in (run.get("report") or {}).get("metric_names", []):
        for stage in run.get("stages", []):
            if name in (stage.get("scalars") or {}):
                metrics[name] = stage["scalars"][name]
    return metrics
