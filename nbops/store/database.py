"""The SQL side of a run store: engines, migrations under a lock, errors said by cause.

One SQLAlchemy Core schema (``schema.py``) serves SQLite (the embedded
default, ``<folder>/runs.db`` in WAL mode) and PostgreSQL (a team store).
Engines are made once per URL and process; a forked child gets fresh ones
(a connection must never be shared across processes).

Migrations are Alembic revisions (``migrations/versions``). Opening a store
brings it to the newest revision, under a lock (PostgreSQL: an advisory lock;
SQLite: a file lock beside runs.db), so two processes never migrate at once;
a store at a revision this nbops does not know is refused. Embedded stores
made before Alembic recorded ``PRAGMA user_version`` (1-3): they are stamped
at that revision first, then upgraded.
"""

from __future__ import annotations

import fcntl
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from nbops.errors import ReadOnlyStoreError, StoreError
from nbops.store.config import mask_url
from nbops.store.faults import store_error
from nbops.store.schema import HEAD

__all__ = ["Database", "MIGRATIONS"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = 0x6E626F7073  # "nbops": the advisory lock id migrations take on PostgreSQL
_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _forget_engines() -> None:
    for engine in _ENGINES.values():
        engine.dispose(close=False)  # the parent's connections stay the parent's
    _ENGINES.clear()


os.register_at_fork(after_in_child=_forget_engines)


class Database:
    """One store's database: ``url`` is a folder (SQLite) or a postgresql:// URL."""

    def __init__(self, store: str, folder: Path | None = None):
        self.is_sqlite = folder is not None
        self.folder = folder
        if self.is_sqlite:
            self.url = f"sqlite:///{folder / 'runs.db'}"
            self.display = str(folder)
        else:
            self.url = _driver_url(store)
            self.display = mask_url(store)
        self.engine = _engine(self.url, self.is_sqlite)

    # -- transactions ----------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._errors(), self.engine.connect() as c:
            yield c

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One transaction; SQLite takes the write lock at its start (BEGIN IMMEDIATE), so
        writers queue instead of failing on a lock upgrade."""
        with self._errors(), self.engine.connect().execution_options(nbops_write=True) as c, c.begin():
            yield c

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.DBAPIError as exc:
            raise self.error(exc.orig or exc) from None
        except sa.exc.SQLAlchemyError as exc:
            raise self.error(exc) from None

    def error(self, exc: BaseException, doing: str = "the run store failed") -> StoreError:
        """A database failure with the fix that fits its cause."""
        if self.is_sqlite:
            err = store_error(self.folder, exc, doing)
            if "readonly" in str(exc).lower():
                return ReadOnlyStoreError(f"read-only store: {err.message}", err.fix)
            return err
        return _pg_error(self.display, exc, doing)

    def use_wal(self) -> None:
        """Put a new SQLite database in WAL mode (readers go on while a writer commits); outside any transaction."""
        with self._errors(), self.engine.connect() as c:
            c.connection.driver_connection.execute("PRAGMA journal_mode=WAL")

    # -- migrations --------------------------------------------------------------
    def revision(self) -> str | None:
        # Read Alembic's table directly: importing alembic costs every command ~0.4 s,
        # and it is needed only when there is something to migrate.
        with self.read() as c:
            if sa.inspect(c).has_table("alembic_version"):
                found = c.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
                if found:
                    return found
            return _legacy_revision(c)

    def migrate(self, *, announce: bool = True) -> str | None:
        """Bring the schema to HEAD under the lock; returns the revision it had (None: it was current)."""
        current = self.revision()
        if current == HEAD:
            return None  # the common case: no alembic import (~0.1-0.3 s of every command)
        from alembic import command
        from alembic.config import Config

        _check_known(current, self.display)
        with self._migration_lock(), self._errors(), self.engine.connect() as c:
            from alembic.runtime.migration import MigrationContext

            current = MigrationContext.configure(c).get_current_revision() or _legacy_revision(c)
            c.commit()
            if current == HEAD:
                return None  # another process migrated while we waited for the lock
            _check_known(current, self.display)
            if announce and current is not None:
                print(f"nbops: upgrading the run store {self.display} from layout {current} to {HEAD}", file=sys.stderr)
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = c
            if current is not None and MigrationContext.configure(c).get_current_revision() is None:
                command.stamp(cfg, current)  # a store from before Alembic: its PRAGMA user_version says where it is
                c.commit()
            command.upgrade(cfg, HEAD)
            if self.is_sqlite:
                # nbops releases before Alembic read only user_version: make them see a newer store and refuse it.
                c.exec_driver_sql(f"PRAGMA user_version = {int(HEAD)}")
            c.commit()
            return current or "empty"

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self.is_sqlite:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.folder / ".migrate.lock", "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
            return
        with self._errors(), self.engine.connect() as c:
            c.exec_driver_sql(f"SELECT pg_advisory_lock({_LOCK_KEY})")
            c.commit()
            try:
                yield
            finally:
                c.exec_driver_sql(f"SELECT pg_advisory_unlock({_LOCK_KEY})")
                c.commit()


def _engine(url: str, is_sqlite: bool) -> Engine:
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is not None:
            return engine
        if is_sqlite:
            engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, pool_size=4, max_overflow=16)
            event.listen(engine, "connect", _sqlite_connect)
            event.listen(engine, "begin", _sqlite_begin)
        else:
            engine = sa.create_engine(
                url,
                pool_pre_ping=True,
                pool_size=4,
                max_overflow=12,
                # An unreachable server must fail fast: the user is waiting on the command.
                connect_args={"connect_timeout": 5, "application_name": "nbops"},
            )
        _ENGINES[url] = engine
        return engine


def _sqlite_connect(dbapi_conn, _record) -> None:
    # SQLAlchemy's recipe: let us emit BEGIN ourselves (pysqlite's own transaction handling defers it).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("nbops_write") else "BEGIN")


def _driver_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _legacy_revision(c: Connection) -> str | None:
    """The revision of an embedded store made before Alembic (None: an empty database)."""
    if c.dialect.name != "sqlite":
        return None
    tables = {row[0] for row in c.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "runs" not in tables:
        return None
    version = c.exec_driver_sql("PRAGMA user_version").scalar() or 0
    if version == 0:  # the first release recorded no version: its columns say how far it got
        columns = {row[1] for row in c.exec_driver_sql("PRAGMA table_info(stages)")}
        version = 3 if "unusable" in columns else 2 if "reason" in columns else 1
    return f"{min(version, 3):04d}" if version <= 3 else f"{version:04d}"


def _known() -> set[str]:
    return {p.stem.split("_")[0].removeprefix("r") for p in (MIGRATIONS / "versions").glob("r*.py")}


def _check_known(revision: str | None, where: str) -> None:
    if revision is not None and revision not in _known():
        raise StoreError(
            f"the run store at {where} has layout {revision}, newer than this nbops knows (up to {HEAD})",
            "upgrade nbops (pip install -U nbops) to open it; it was written by a newer release",
        )


def _pg_error(where: str, exc: BaseException, doing: str) -> StoreError:
    text = mask_url(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    low = str(exc).lower()
    code = getattr(exc, "sqlstate", None)
    if code == "42501" or "permission denied" in low or "read-only transaction" in low:
        return ReadOnlyStoreError(
            f"read-only store: {where} does not let this role write ({text})",
            "this role can list, show, diff and load runs; to run, use a role with INSERT/UPDATE/DELETE on the nbops tables",
        )
    if code in ("28P01", "28000") or "password authentication failed" in low or "no password supplied" in low:
        return StoreError(
            f"{doing}: {where} refused the credentials ({text})",
            "check the user and password (in the URL, PGPASSWORD or ~/.pgpass)",
        )
    if code == "3D000" or ("database" in low and "does not exist" in low):
        return StoreError(
            f"{doing}: the database of {where} does not exist ({text})",
            "create it (createdb -h HOST -p PORT -U USER NAME, or CREATE DATABASE NAME) or fix the name in the URL",
        )
    if any(
        s in low for s in ("connection refused", "timeout expired", "could not connect", "could not translate host", "no route to host", "connection timed out")
    ):
        return StoreError(
            f"{doing}: cannot reach the database {where} ({text})",
            "check the host and port in the URL, that PostgreSQL is running and accepts connections from here",
        )
    if "server closed the connection" in low or "terminating connection" in low or "connection is closed" in low:
        return StoreError(f"{doing}: the connection to {where} was lost ({text})", "check that PostgreSQL is up; then 'nbops resume' the run")
    return StoreError(f"{doing}: {where}: {text}", "check the database URL (--store / NBOPS_STORE) and the server's log")
