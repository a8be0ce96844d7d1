"""The run store: records in SQL (SQLite or PostgreSQL), bytes in content-addressed objects.

Layout of an embedded store folder (default ``.nbops/`` beside the notebook)::

    runs.db            runs, stages, studies (SQLite, WAL mode)
    objects/ab/cd...   artifacts and executed notebooks, by sha256
    pipelines/<hash>/  converted pipelines (pipeline.yaml + stages/)
    runs/<run id>/     working folder of a run (artifacts, executed notebooks)

A team store keeps the records in PostgreSQL and the objects at any fsspec
URL; ``root`` is then the local workspace (pipelines, run folders, hash memo;
see ``config.py``). Only driver processes write records; stage kernels and Ray
workers write into their run folder (or, with shared objects, straight into
the objects), which the driver ingests. Every write is one short transaction,
so many runs, people and machines share one store.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import secrets
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from nbops.errors import NotFoundError, ReadOnlyStoreError, UsageError
from nbops.status import RUN_STATUSES, STAGE_STATUSES
from nbops.store.config import StoreSettings, is_database_url, mask_url
from nbops.store.database import Database
from nbops.store.faults import store_error
from nbops.store.objects import open_objects
from nbops.store.schema import HEAD, JSON_RUN, JSON_STAGE, runs, stages, studies
from nbops.text import to_json_text

__all__ = ["RunStore", "SCHEMA_VERSION", "proc_start", "new_run_id", "validate_run_id", "iso", "RUN_ID_RE", "STAGE_STATUSES", "RUN_STATUSES", "current_user"]

RUN_ID_RE = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
SCHEMA_VERSION = int(HEAD)


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


def current_user() -> str:
    """Who runs: ``NBOPS_USER``, else the OS user."""
    user = os.environ.get("NBOPS_USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        return f"uid{os.getuid()}"


class RunStore:
    def __init__(self, root: str | os.PathLike | StoreSettings, create: bool = True, *, objects: str | None = None, workspace: str | os.PathLike | None = None):
        """Open a store: ``root`` is a folder (embedded), a postgresql:// URL, or resolved settings.
        ``create=False`` (every read) makes nothing and says "no runs yet" (NotFoundError)
        when there is no embedded store there; a database store is never created, only migrated."""
        if isinstance(root, StoreSettings):
            objects = root.objects if objects is None else objects
            workspace = root.workspace if workspace is None else workspace
            root = root.store
        url = str(root)
        self.is_database = is_database_url(url) and not url.startswith("sqlite:///")
        if not self.is_database:
            folder = Path(url.removeprefix("sqlite:///")).resolve()
            if folder.name == "runs.db":
                folder = folder.parent
            self.root = folder
            self.db = Database(url, folder)
            if not create and not (folder / "runs.db").is_file():
                raise NotFoundError(f"no runs yet: there is no run store at {folder}", "run the notebook first, or pass --store / --notebook")
        else:
            self.root = Path(workspace if workspace is not None else Path.cwd() / ".nbops").resolve()
            self.db = Database(url)
        self.objects = open_objects(objects, self.root / "objects")
        self.location = self.db.display if objects is None else f"{self.db.display} + {mask_url(self.objects.location)}"
        try:
            if not self.is_database and not (self.root / "runs.db").is_file():
                self.root.mkdir(parents=True, exist_ok=True)
                self.db.use_wal()
            self.migrated_from = self.db.migrate()
            if create:
                self.objects.probe()  # an unreachable bucket fails here, before a run records anything
        except OSError as exc:
            raise store_error(self.root, exc, "cannot create the run store") from None

    @property
    def kind(self) -> str:
        return "postgresql" if self.is_database else "sqlite"

    def describe(self) -> dict[str, Any]:
        """Where this store is, as surfaces show it (no credentials)."""
        return {"location": self.location, "kind": self.kind, "objects": mask_url(self.objects.location), "shared_objects": self.objects.shared}

    def schema_version(self) -> int:
        revision = self.db.revision()
        return int(revision) if revision else 0

    # -- runs ----------------------------------------------------------------
    def create_run(self, run_id: str, **fields: Any) -> None:
        fields.setdefault("status", "running")
        fields.setdefault("started_at", time.time())
        fields.setdefault("user", current_user())
        fields.update(host=socket.gethostname(), pid=os.getpid(), pid_start=proc_start(os.getpid()), heartbeat=time.time())
        with self.db.write() as c:
            c.execute(runs.insert().values(id=run_id, **_dump_all(fields, JSON_RUN)))

    def update_run(self, run_id: str, **fields: Any) -> None:
        with self.db.write() as c:
            c.execute(runs.update().where(runs.c.id == run_id).values(**_dump_all(fields, JSON_RUN)))

    def heartbeat(self, run_id: str) -> None:
        self.update_run(run_id, heartbeat=time.time())

    def put_stage(self, run_id: str, name: str, position: int, **fields: Any) -> None:
        """Insert or update one stage row."""
        values = {"run_id": run_id, "name": name, "position": position, **_dump_all(fields, JSON_STAGE)}
        insert = (postgresql.insert if self.is_database else sqlite.insert)(stages).values(**values)
        updates = {k: insert.excluded[k] for k in values if k not in ("run_id", "name")}
        with self.db.write() as c:
            c.execute(insert.on_conflict_do_update(index_elements=["run_id", "name"], set_=updates))

    def get_run(self, run_id: str) -> dict[str, Any]:
        validate_run_id(run_id)
        self.mark_interrupted()
        with self.db.read() as c:
            row = c.execute(sa.select(runs).where(runs.c.id == run_id)).mappings().first()
            if row is None:
                raise NotFoundError(f"no run {run_id} in the store {self.location}", "see 'nbops runs ls' (and --store)")
            rows = c.execute(sa.select(stages).where(stages.c.run_id == run_id).order_by(stages.c.position)).mappings().all()
        run = _load(row, JSON_RUN)
        run["stages"] = [_load(s, JSON_STAGE) for s in rows]
        return run

    def list_runs(
        self, *, notebook: str | None = None, study: str | None = None, user: str | None = None, limit: int = 100, brief: bool = False
    ) -> list[dict[str, Any]]:
        """Newest first. ``brief``: the run rows and each stage's name and status only (fast listings)."""
        self.mark_interrupted()
        query = sa.select(runs)
        for column, value in ((runs.c.notebook, notebook), (runs.c.study, study), (runs.c.user, user)):
            if value is not None:
                query = query.where(column == value)
        query = query.order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(limit)
        wanted = [stages.c.run_id, stages.c.name, stages.c.status] + ([] if brief else [stages.c.metrics, stages.c.scalars])
        with self.db.read() as c:
            rows = c.execute(query).mappings().all()
            ids = [r["id"] for r in rows]
            stage_rows = c.execute(sa.select(*wanted).where(stages.c.run_id.in_(ids)).order_by(stages.c.position)).mappings().all() if ids else []
        by_run: dict[str, list[dict]] = {}
        for s in stage_rows:
            by_run.setdefault(s["run_id"], []).append(_load(s, JSON_STAGE))
        out = []
        for r in rows:
            run = _load(r, JSON_RUN)
            run["stages"] = by_run.get(run["id"], [])
            out.append(run)
        return out

    def find_cached(self, cache_key: str, limit: int = 20) -> list[dict[str, Any]]:
        """Successful executions of a stage with this cache key, newest first.

        Several can exist: the same code, parameters and inputs ran against
        different data files or package versions (their ``deps``); the
        caller picks the first whose deps still hold."""
        query = (
            sa.select(stages)
            .where(stages.c.cache_key == cache_key, stages.c.status == "succeeded", stages.c.notebook_sha256.is_not(None), stages.c.unusable.is_(None))
            .order_by(stages.c.ended_at.desc())
            .limit(limit)
        )
        with self.db.read() as c:
            return [_load(row, JSON_STAGE) for row in c.execute(query).mappings()]

    def last_execution(self, notebook: str, stage: str, before: float | None = None) -> dict[str, Any] | None:
        """The newest record of ``stage`` of ``notebook`` that ran or was reused
        (the baseline a new run's cache decision is explained against). In a team
        store a colleague's checkout of the same notebook lives at another path:
        when this path has no record, the newest one of a notebook of the same name is the baseline."""
        for same in (runs.c.notebook == notebook, runs.c.notebook.endswith("/" + Path(notebook).name, autoescape=True)):
            query = (
                sa.select(stages)
                .join(runs, runs.c.id == stages.c.run_id)
                .where(same, stages.c.name == stage, stages.c.status.in_(("succeeded", "cached")), stages.c.key_parts != "{}")
                .order_by(stages.c.started_at.desc())
                .limit(1)
            )
            if before is not None:
                query = query.where(stages.c.started_at < before)
            with self.db.read() as c:
                row = c.execute(query).mappings().first()
            if row is not None:
                return _load(row, JSON_STAGE)
        return None

    def mark_interrupted(self) -> None:
        """Runs whose driver died (SIGKILL, power loss) are 'interrupted', not 'running' forever."""
        host = socket.gethostname()
        now = time.time()
        with self.db.read() as c:
            rows = (
                c.execute(sa.select(runs.c.id, runs.c.host, runs.c.pid, runs.c.pid_start, runs.c.heartbeat).where(runs.c.status == "running")).mappings().all()
            )
        dead = [r["id"] for r in rows if not _alive(r, host, now)]
        if not dead:
            return
        error = json.dumps({"ename": "Interrupted", "evalue": "the nbops process running this stage stopped"})
        try:
            self._mark(dead, error)
        except ReadOnlyStoreError:
            pass  # a read-only role shows them as running; a writer marks them

    def _mark(self, dead: list[str], error: str) -> None:
        with self.db.write() as c:
            for run_id in dead:
                done = c.execute(
                    runs.update()
                    .where(runs.c.id == run_id, runs.c.status == "running")
                    .values(status="interrupted", ended_at=sa.func.coalesce(runs.c.ended_at, runs.c.heartbeat))
                )
                if done.rowcount:  # another reader may have marked it first
                    c.execute(stages.update().where(stages.c.run_id == run_id, stages.c.status == "running").values(status="failed", error=error))
                    c.execute(stages.update().where(stages.c.run_id == run_id, stages.c.status == "pending").values(status="skipped"))

    def check_writable(self) -> None:
        """Raise ReadOnlyStoreError unless this role (or user) may add runs: asked before a
        bulk write (``store copy``) puts objects anywhere."""
        if self.is_database:
            query = "SELECT has_table_privilege('runs', 'INSERT') AND has_table_privilege('stages', 'INSERT')"
            with self.db.read() as c:
                allowed = c.exec_driver_sql(query).scalar()
        else:
            allowed = os.access(self.root / "runs.db", os.W_OK) and os.access(self.root, os.W_OK)
        if not allowed:
            raise ReadOnlyStoreError(
                f"read-only store: {self.location} does not let this role add runs",
                "use a role (or an account) that may write there; reading (runs ls/show/diff) works as it is",
            )

    # -- bulk reads and writes (maintenance, copy) -------------------------------
    def run_rows(self) -> list[dict[str, Any]]:
        """Every run's id, status and start, newest first."""
        with self.db.read() as c:
            query = sa.select(runs.c.id, runs.c.status, runs.c.started_at).order_by(runs.c.started_at.desc(), runs.c.id.desc())
            return [dict(r) for r in c.execute(query).mappings()]

    def stage_refs(self, run_ids: set[str] | None = None) -> list[dict[str, Any]]:
        """Every stage record's run, name and object references (notebook, outputs, artifacts)."""
        query = sa.select(stages.c.run_id, stages.c.name, stages.c.notebook_sha256, stages.c.outputs, stages.c.artifacts)
        with self.db.read() as c:
            rows = [_load(r, JSON_STAGE) for r in c.execute(query).mappings()]
        return [r for r in rows if run_ids is None or r["run_id"] in run_ids]

    def counts(self) -> dict[str, int]:
        with self.db.read() as c:
            return {
                "runs": c.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one(),
                "stages": c.execute(sa.select(sa.func.count()).select_from(stages)).scalar_one(),
                "unusable_stages": c.execute(sa.select(sa.func.count()).select_from(stages).where(stages.c.unusable.is_not(None))).scalar_one(),
            }

    def mark_unusable(self, notes: dict[tuple[str, str], dict[str, Any]]) -> None:
        """(run, stage) -> note: those records stay as history but never serve the cache again."""
        with self.db.write() as c:
            for (run_id, stage), note in notes.items():
                c.execute(stages.update().where(stages.c.run_id == run_id, stages.c.name == stage).values(unusable=json.dumps(note)))

    def delete_runs(self, run_ids: list[str]) -> None:
        with self.db.write() as c:
            for chunk in range(0, len(run_ids), 500):
                ids = run_ids[chunk : chunk + 500]
                c.execute(stages.delete().where(stages.c.run_id.in_(ids)))
                c.execute(runs.delete().where(runs.c.id.in_(ids)))

    def import_run(self, run: dict[str, Any]) -> bool:
        """Insert a run record and its stages as they are (``nbops store copy``); False when the id is already here."""
        row = {k: v for k, v in run.items() if k in runs.c and k != "stages"}
        with self.db.write() as c:
            if c.execute(sa.select(runs.c.id).where(runs.c.id == run["id"])).first() is not None:
                return False
            c.execute(runs.insert().values(**_dump_all(row, JSON_RUN)))
            for stage in run.get("stages", []):
                c.execute(stages.insert().values(**_dump_all({k: v for k, v in stage.items() if k in stages.c}, JSON_STAGE)))
        return True

    # -- studies (sweeps) ------------------------------------------------------
    def put_study(self, name: str, spec: dict[str, Any]) -> None:
        insert = (postgresql.insert if self.is_database else sqlite.insert)(studies).values(name=name, created_at=time.time(), spec=json.dumps(spec))
        with self.db.write() as c:
            c.execute(insert.on_conflict_do_update(index_elements=["name"], set_={"spec": insert.excluded.spec}))

    def get_study(self, name: str) -> dict[str, Any] | None:
        with self.db.read() as c:
            row = c.execute(sa.select(studies).where(studies.c.name == name)).mappings().first()
        return None if row is None else {"name": row["name"], "created_at": row["created_at"], **json.loads(row["spec"])}

    # -- folders -----------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / validate_run_id(run_id)

    def pipelines_dir(self) -> Path:
        return self.root / "pipelines"


def _alive(r: Any, host: str, now: float) -> bool:
    if r["host"] == host and r["pid"]:
        if r["pid_start"] is None:  # no /proc: fall back on the signal check
            try:
                os.kill(r["pid"], 0)
                return True
            except OSError:
                return False
        return proc_start(r["pid"]) == r["pid_start"]
    return r["heartbeat"] is not None and now - r["heartbeat"] < 120  # another machine: trust the heartbeat


def _dump_all(fields: dict[str, Any], json_cols: tuple[str, ...]) -> dict[str, Any]:
    return {k: to_json_text(v, sort_keys=True) if k in json_cols and v is not None else v for k, v in fields.items()}


def _load(row: Any, json_cols: tuple[str, ...]) -> dict[str, Any]:
    out = dict(row)
    for k in json_cols:
        if k in out and isinstance(out[k], str):
            out[k] = json.loads(out[k])
    return out
