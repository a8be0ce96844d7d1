"""The model registry's records: versions, aliases and their history, sampled requests.

SQL only (the rules: gates, rollback, what a reference means, live in
``nbops.models``). A version copies what a reader needs without its run
(flavor, signature, metrics, parameters) and points at the run for lineage;
its bytes are the run's object, by content hash. Alias moves are
append-only events written in the same transaction as the alias itself, so
the history is never missing a move that happened.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from nbops.store.run_store import RunStore, _dump_all, _load, current_user
from nbops.store.schema import JSON_VERSION, alias_events, model_aliases, model_versions, models, serve_requests

__all__ = ["Registry"]

# Registry writes are rare and short: on PostgreSQL they take one transaction-level
# advisory lock, so two people registering at once get versions n and n+1, never a clash.
_PG_LOCK = 0x6E626F70_6D6F64  # "nbopmod"


class Registry:
    def __init__(self, store: RunStore):
        self.store = store
        self.db = store.db

    def _lock(self, c: sa.Connection) -> None:
        if not self.db.is_sqlite:  # SQLite's writers already queue (BEGIN IMMEDIATE)
            c.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})

    # -- versions ------------------------------------------------------------------
    def add_version(self, name: str, **fields: Any) -> int:
        """A new version of ``name`` (the model is created with its first version); returns its number."""
        now = time.time()
        user = fields.pop("created_by", None) or current_user()
        with self.db.write() as c:
            self._lock(c)
            if c.execute(sa.select(models.c.name).where(models.c.name == name)).first() is None:
                c.execute(models.insert().values(name=name, created_at=now, created_by=user))
            latest = c.execute(sa.select(sa.func.max(model_versions.c.version)).where(model_versions.c.name == name)).scalar()
            version = (latest or 0) + 1
            values = _dump_all({**fields, "created_at": now, "created_by": user}, JSON_VERSION)
            c.execute(model_versions.insert().values(name=name, version=version, **values))
        return version

    def models(self) -> list[dict[str, Any]]:
        """Every model: its row, how many versions, the latest, and its aliases."""
        with self.db.read() as c:
            rows = c.execute(sa.select(models).order_by(models.c.name)).mappings().all()
            counts = dict(c.execute(sa.select(model_versions.c.name, sa.func.max(model_versions.c.version)).group_by(model_versions.c.name)).all())
            aliases = c.execute(sa.select(model_aliases).order_by(model_aliases.c.alias)).mappings().all()
        out = []
        for r in rows:
            out.append({**dict(r), "latest": counts.get(r["name"]), "aliases": {a["alias"]: a["version"] for a in aliases if a["name"] == r["name"]}})
        return out

    def has_model(self, name: str) -> bool:
        with self.db.read() as c:
            return c.execute(sa.select(models.c.name).where(models.c.name == name)).first() is not None

    def versions(self, name: str) -> list[dict[str, Any]]:
        with self.db.read() as c:
            rows = c.execute(sa.select(model_versions).where(model_versions.c.name == name).order_by(model_versions.c.version)).mappings().all()
        return [_load(r, JSON_VERSION) for r in rows]

    def version(self, name: str, version: int) -> dict[str, Any] | None:
        with self.db.read() as c:
            row = c.execute(sa.select(model_versions).where(model_versions.c.name == name, model_versions.c.version == version)).mappings().first()
        return None if row is None else _load(row, JSON_VERSION)

    def versions_of_run(self, run_id: str) -> list[dict[str, Any]]:
        with self.db.read() as c:
            rows = c.execute(sa.select(model_versions).where(model_versions.c.run_id == run_id).order_by(model_versions.c.name)).mappings().all()
        return [_load(r, JSON_VERSION) for r in rows]

    # -- aliases -------------------------------------------------------------------
    def aliases(self, name: str) -> dict[str, int]:
        with self.db.read() as c:
            rows = c.execute(sa.select(model_aliases.c.alias, model_aliases.c.version).where(model_aliases.c.name == name)).all()
        return {alias: version for alias, version in rows}

    def alias(self, name: str, alias: str) -> int | None:
        return self.aliases(name).get(alias)

    def move_alias(self, name: str, alias: str, to_version: int, *, action: str, message: str | None = None, gates: list | None = None) -> int | None:
        """Point ``alias`` at ``to_version`` and record the move; returns the version it left
        (read inside the same transaction, so the event's ``from`` is true even when two
        people move the alias at once)."""
        now, user = time.time(), current_user()
        with self.db.write() as c:
            self._lock(c)
            current = c.execute(sa.select(model_aliases.c.version).where(model_aliases.c.name == name, model_aliases.c.alias == alias)).scalar()
            if current is None:
                c.execute(model_aliases.insert().values(name=name, alias=alias, version=to_version, updated_at=now, updated_by=user))
            else:
                c.execute(
                    model_aliases.update()
                    .where(model_aliases.c.name == name, model_aliases.c.alias == alias)
                    .values(version=to_version, updated_at=now, updated_by=user)
                )
            event = {"name": name, "alias": alias, "action": action, "from_version": current, "to_version": to_version, "user": user, "at": now}
            c.execute(alias_events.insert().values(**_dump_all({**event, "message": message, "gates": gates or []}, JSON_VERSION)))
        return current

    def events(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        """Every alias move of ``name`` (or of one alias), oldest first."""
        query = sa.select(alias_events).where(alias_events.c.name == name)
        if alias is not None:
            query = query.where(alias_events.c.alias == alias)
        with self.db.read() as c:
            rows = c.execute(query.order_by(alias_events.c.id)).mappings().all()
        return [_load(r, JSON_VERSION) for r in rows]

    # -- served requests -------------------------------------------------------------
    def log_requests(self, name: str, version: int, rows: int, payload: dict) -> None:
        """A sampled request of ``nbops serve``: ``payload`` is columns -> values."""
        with self.db.write() as c:
            c.execute(
                serve_requests.insert().values(
                    **_dump_all({"name": name, "version": version, "at": time.time(), "rows": rows, "payload": payload}, JSON_VERSION)
                )
            )

    def requests(self, name: str, version: int | None = None, since: float | None = None, limit: int = 100_000) -> list[dict[str, Any]]:
        query = sa.select(serve_requests).where(serve_requests.c.name == name)
        if version is not None:
            query = query.where(serve_requests.c.version == version)
        if since is not None:
            query = query.where(serve_requests.c.at >= since)
        with self.db.read() as c:
            rows = c.execute(query.order_by(serve_requests.c.id.desc()).limit(limit)).mappings().all()
        return [_load(r, JSON_VERSION) for r in reversed(rows)]
