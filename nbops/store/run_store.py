"""The run store: SQLite (WAL) for metadata, content-addressed objects for bytes.

Layout of a store folder (default ``.nbops/`` beside the notebook)::

    runs.db            runs, stages, studies (SQLite, WAL mode)
    objects/ab/cd...   artifacts and executed notebooks, by sha256
    pipelines/<hash>/  converted pipelines (pipeline.yaml + stages/)
    runs/<run id>/     working folder of a run (artifacts, executed notebooks)

Only the driver process writes here; stage kernels and Ray workers write
into their own run folder, which the driver ingests. Every write is one
short transaction, so many runs can share one store (WAL lets readers go on
while one writer commits; ``busy_timeout`` queues writers).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nbops.errors import NotFoundError, StoreError, UsageError
from nbops.status import RUN_STATUSES, STAGE_STATUSES
from nbops.store.faults import store_error
from nbops.store.objects import ObjectStore
from nbops.text import to_json_text

__all__ = ["RunStore", "SCHEMA_VERSION", "proc_start", "new_run_id", "validate_run_id", "iso", "RUN_ID_RE", "STAGE_STATUSES", "RUN_STATUSES"]

RUN_ID_RE = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    notebook TEXT,
    pipeline_dir TEXT,
    pipeline_sha256 TEXT,
    notebook_sha256 TEXT,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    params TEXT NOT NULL DEFAULT '{}',
    env TEXT NOT NULL DEFAULT '{}',
    git TEXT,
    executor TEXT,
    kind TEXT NOT NULL DEFAULT 'run',
    parent_id TEXT,
    study TEXT,
    trial INTEGER,
    host TEXT,
    pid INTEGER,
    pid_start TEXT,
    heartbeat REAL,
    error TEXT,
    report TEXT
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started_at);
CREATE INDEX IF NOT EXISTS runs_study ON runs(study);
CREATE TABLE IF NOT EXISTS stages (
    run_id TEXT NOT NULL REFERENCES runs(id),
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    status TEXT NOT NULL,
    started_at REAL,
    ended_at REAL,
    cache_key TEXT,
    cached_from TEXT,
    notebook_sha256 TEXT,
    outputs TEXT NOT NULL DEFAULT '{}',
    scalars TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '[]',
    checks TEXT NOT NULL DEFAULT '[]',
    inputs TEXT NOT NULL DEFAULT '[]',
    artifacts TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    worker TEXT NOT NULL DEFAULT '{}',
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX IF NOT EXISTS stages_cache ON stages(cache_key, status);
CREATE TABLE IF NOT EXISTS studies (
    name TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    spec TEXT NOT NULL
);
"""

# The layout, as numbered steps: a store records in ``PRAGMA user_version`` the
# last step applied, and opening it applies the rest in one transaction. Append
# steps; never edit one that shipped. Version 1 is the first release's layout
# (which recorded no version: an existing store at 0 is taken as 1 applied or not,
# every step being idempotent).
_MIGRATIONS: list[tuple[str, list[str]]] = [
    ("the first release's tables", [stmt.strip() for stmt in _SCHEMA_V1.split(";") if stmt.strip()]),
    (
        "why a stage ran, its cache-key parts and the files and packages it depended on",
        [
            "ALTER TABLE stages ADD COLUMN reason TEXT",
            "ALTER TABLE stages ADD COLUMN key_parts TEXT NOT NULL DEFAULT '{}'",
            "ALTER TABLE stages ADD COLUMN deps TEXT NOT NULL DEFAULT '[]'",
        ],
    ),
    # 'nbops store verify --repair': a record whose objects were damaged is kept
    # (history) but never again served as a cache hit.
    ("stage records marked unusable for the cache", ["ALTER TABLE stages ADD COLUMN unusable TEXT"]),
]
SCHEMA_VERSION = len(_MIGRATIONS)

_JSON_RUN = ("params", "env", "git", "error", "report")
_JSON_STAGE = ("outputs", "scalars", "metrics", "checks", "inputs", "artifacts", "error", "worker", "reason", "key_parts", "deps", "unusable")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def validate_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
        raise UsageError(f"{run_id!r} is not a run id", "run ids look like 20261130-013000-ab12cd; see 'nbops runs ls'")
    return run_id


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def proc_start(pid: int) -> str | None:
    """The kernel's start time of a process: tells a live pid from a reused one."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class RunStore:
    def __init__(self, root: str | os.PathLike, create: bool = True):
        """Open the store at ``root``; ``create=False`` (every read) makes nothing and says
        "no runs yet" (NotFoundError) when there is no store there."""
        self.root = Path(root).resolve()
        if not create and not (self.root / "runs.db").is_file():
            raise NotFoundError(f"no runs yet: there is no run store at {self.root}", "run the notebook first, or pass --store / --notebook")
        self.objects = ObjectStore(self.root / "objects")
        try:
            if create:
                self.root.mkdir(parents=True, exist_ok=True)
            with self._conn() as c:
                c.execute("PRAGMA journal_mode=WAL")
                self.migrated_from = _migrate(c, self.root)
        except OSError as exc:
            raise store_error(self.root, exc, "cannot create the run store") from None

    def schema_version(self) -> int:
        with self._conn() as c:
            return c.execute("PRAGMA user_version").fetchone()[0]

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        # One connection per operation: safe from any thread (the Jupyter
        # server calls us from several), cheap with SQLite. Every SQLite
        # failure leaves here as a StoreError that names its cause and fix.
        conn = None
        try:
            conn = sqlite3.connect(self.root / "runs.db", timeout=60, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute("PRAGMA synchronous=NORMAL")
            yield conn
        except sqlite3.Error as exc:
            raise store_error(self.root, exc) from None
        finally:
            if conn is not None:
                conn.close()

    def _write(self, sql: str, args: tuple) -> None:
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute(sql, args)
                c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:  # a failed COMMIT may have ended it: the original error is the one to report
                    c.execute("ROLLBACK")
                raise

    # -- runs ----------------------------------------------------------------
    def create_run(self, run_id: str, **fields: Any) -> None:
        fields.setdefault("status", "running")
        fields.setdefault("started_at", time.time())
        fields.update(host=socket.gethostname(), pid=os.getpid(), pid_start=proc_start(os.getpid()), heartbeat=time.time())
        cols = ["id", *fields]
        values = [run_id, *(_dump(k, v, _JSON_RUN) for k, v in fields.items())]
        self._write(f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", tuple(values))

    def update_run(self, run_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self._write(f"UPDATE runs SET {sets} WHERE id = ?", (*(_dump(k, v, _JSON_RUN) for k, v in fields.items()), run_id))

    def heartbeat(self, run_id: str) -> None:
        self.update_run(run_id, heartbeat=time.time())

    def put_stage(self, run_id: str, name: str, position: int, **fields: Any) -> None:
        """Insert or update one stage row."""
        fields = {k: _dump(k, v, _JSON_STAGE) for k, v in fields.items()}
        cols = ["run_id", "name", "position", *fields]
        updates = ", ".join(f"{k} = excluded.{k}" for k in ["position", *fields])
        self._write(
            f"INSERT INTO stages ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) ON CONFLICT(run_id, name) DO UPDATE SET {updates}",
            (run_id, name, position, *fields.values()),
        )

    def get_run(self, run_id: str) -> dict[str, Any]:
        validate_run_id(run_id)
        self.mark_interrupted()
        with self._conn() as c:
            row = c.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no run {run_id} in the store {self.root}", "see 'nbops runs ls' (and --store)")
            stages = c.execute("SELECT * FROM stages WHERE run_id = ? ORDER BY position", (run_id,)).fetchall()
        run = _load(row, _JSON_RUN)
        run["stages"] = [_load(s, _JSON_STAGE) for s in stages]
        return run

    def list_runs(self, *, notebook: str | None = None, study: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        self.mark_interrupted()
        where, args = [], []
        if notebook is not None:
            where.append("notebook = ?")
            args.append(notebook)
        if study is not None:
            where.append("study = ?")
            args.append(study)
        sql = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += " ORDER BY started_at DESC, id DESC LIMIT ?"
        with self._conn() as c:
            rows = c.execute(sql, (*args, limit)).fetchall()
            ids = [r["id"] for r in rows]
            stage_rows = (
                c.execute(
                    f"SELECT run_id, name, status, metrics, scalars FROM stages WHERE run_id IN ({', '.join('?' * len(ids))}) ORDER BY position",
                    ids,
                ).fetchall()
                if ids
                else []
            )
        stages: dict[str, list[dict]] = {}
        for s in stage_rows:
            stages.setdefault(s["run_id"], []).append(_load(s, _JSON_STAGE))
        out = []
        for r in rows:
            run = _load(r, _JSON_RUN)
            run["stages"] = stages.get(run["id"], [])
            out.append(run)
        return out

    def find_cached(self, cache_key: str, limit: int = 20) -> list[dict[str, Any]]:
        """Successful executions of a stage with this cache key, newest first.

        Several can exist: the same code, parameters and inputs ran against
        different data files or package versions (their ``deps``); the
        caller picks the first whose deps still hold."""
        with self._conn() as c:
            rows = c.execute(
                "SELECT * FROM stages WHERE cache_key = ? AND status = 'succeeded' AND notebook_sha256 IS NOT NULL AND unusable IS NULL "
                "ORDER BY ended_at DESC LIMIT ?",
                (cache_key, limit),
            ).fetchall()
        return [_load(row, _JSON_STAGE) for row in rows]

    def last_execution(self, notebook: str, stage: str, before: float | None = None) -> dict[str, Any] | None:
        """The newest record of ``stage`` of ``notebook`` that ran or was reused
        (the baseline a new run's cache decision is explained against)."""
        with self._conn() as c:
            row = c.execute(
                "SELECT stages.* FROM stages JOIN runs ON runs.id = stages.run_id "
                "WHERE runs.notebook = ? AND stages.name = ? AND stages.status IN ('succeeded', 'cached') "
                "AND stages.key_parts != '{}' AND (? IS NULL OR stages.started_at < ?) "
                "ORDER BY stages.started_at DESC LIMIT 1",
                (notebook, stage, before, before),
            ).fetchone()
        return None if row is None else _load(row, _JSON_STAGE)

    def mark_interrupted(self) -> None:
        """Runs whose driver died (SIGKILL, power loss) are 'interrupted', not 'running' forever."""
        host = socket.gethostname()
        now = time.time()
        with self._conn() as c:
            rows = c.execute("SELECT id, host, pid, pid_start, heartbeat FROM runs WHERE status = 'running'").fetchall()
        for r in rows:
            if r["host"] == host and r["pid"]:
                alive = proc_start(r["pid"]) is not None and proc_start(r["pid"]) == r["pid_start"]
                if r["pid_start"] is None:  # no /proc: fall back on the signal check
                    try:
                        os.kill(r["pid"], 0)
                        alive = True
                    except OSError:
                        alive = False
            else:  # another machine: trust the heartbeat
                alive = r["heartbeat"] is not None and now - r["heartbeat"] < 120
            if not alive:
                self._write(
                    "UPDATE runs SET status = 'interrupted', ended_at = COALESCE(ended_at, heartbeat) WHERE id = ? AND status = 'running'",
                    (r["id"],),
                )
                self._write(
                    "UPDATE stages SET status = 'failed', error = ? WHERE run_id = ? AND status IN ('running')",
                    (json.dumps({"ename": "Interrupted", "evalue": "the nbops process running this stage stopped"}), r["id"]),
                )
                self._write("UPDATE stages SET status = 'skipped' WHERE run_id = ? AND status = 'pending'", (r["id"],))

    # -- studies (sweeps) ------------------------------------------------------
    def put_study(self, name: str, spec: dict[str, Any]) -> None:
        self._write(
            "INSERT INTO studies (name, created_at, spec) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec",
            (name, time.time(), json.dumps(spec)),
        )

    def get_study(self, name: str) -> dict[str, Any] | None:
        with self._conn() as c:
            row = c.execute("SELECT * FROM studies WHERE name = ?", (name,)).fetchone()
        return None if row is None else {"name": row["name"], "created_at": row["created_at"], **json.loads(row["spec"])}

    # -- folders -----------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / validate_run_id(run_id)

    def pipelines_dir(self) -> Path:
        return self.root / "pipelines"


def _migrate(c: sqlite3.Connection, root: Path) -> int | None:
    """Bring the store's layout to SCHEMA_VERSION; returns the version it had, or None when current."""
    version = c.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return None
    if version > SCHEMA_VERSION:
        raise _too_new(root, version)
    c.execute("BEGIN IMMEDIATE")  # another process may be migrating: read the version again under the lock
    try:
        version = c.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise _too_new(root, version)
        start = version
        for number, (_, statements) in enumerate(_MIGRATIONS, start=1):
            if number <= version:
                continue
            for stmt in statements:
                column = re.match(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", stmt)
                # A store from before versioning may already have some later columns.
                if column and column[2] in {row["name"] for row in c.execute(f"PRAGMA table_info({column[1]})")}:
                    continue
                c.execute(stmt)
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise
    return start


def _too_new(root: Path, version: int) -> StoreError:
    return StoreError(
        f"the run store at {root} has layout version {version}, newer than this nbops knows (up to {SCHEMA_VERSION})",
        "upgrade nbops (pip install -U nbops) to open it; it was written by a newer release",
    )


def _dump(key: str, value: Any, json_cols: tuple[str, ...]) -> Any:
    return to_json_text(value, sort_keys=True) if key in json_cols and value is not None else value


def _load(row: sqlite3.Row, json_cols: tuple[str, ...]) -> dict[str, Any]:
    out = dict(row)
    for k in json_cols:
        if k in out and isinstance(out[k], str):
            out[k] = json.loads(out[k])
    return out
