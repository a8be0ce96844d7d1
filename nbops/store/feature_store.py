"""The feature store's records: tables and their versions.

SQL only (the rules: schema changes, what ``customer_stats:latest`` means, the
point-in-time join, live in ``nbops.features``). A version's rows are one
Parquet object in the store's objects, by content hash; the record keeps what a
reader needs without opening it (schema, rows, entities, time range) and points
at the run that produced it, if any, for lineage.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from nbops.store.run_store import RunStore, _dump_all, _load, current_user
from nbops.store.schema import JSON_FEATURE, feature_tables, feature_versions

__all__ = ["FeatureStore"]

# Publishing is rare and short: on PostgreSQL one transaction-level advisory lock
# makes two people publishing at once get versions n and n+1, never a clash.
_PG_LOCK = 0x6E626F70_666561  # "nbopfea"


class FeatureStore:
    def __init__(self, store: RunStore):
        self.store = store
        self.db = store.db

    def add_version(self, name: str, *, entity: str, timestamp: str, description: str | None = None, **fields: Any) -> int:
        """A new version of table ``name`` (created with its first version); returns its number.

        A later version may not change the entity or timestamp column: the caller checks
        that against :meth:`table` first; here a description given replaces the old one."""
        now = time.time()
        user = fields.pop("created_by", None) or current_user()
        with self.db.write() as c:
            if not self.db.is_sqlite:  # SQLite's writers already queue (BEGIN IMMEDIATE)
                c.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
            row = c.execute(sa.select(feature_tables.c.name).where(feature_tables.c.name == name)).first()
            if row is None:
                c.execute(
                    feature_tables.insert().values(name=name, entity=entity, timestamp=timestamp, description=description, created_at=now, created_by=user)
                )
            elif description is not None:
                c.execute(feature_tables.update().where(feature_tables.c.name == name).values(description=description))
            latest = c.execute(sa.select(sa.func.max(feature_versions.c.version)).where(feature_versions.c.name == name)).scalar()
            version = (latest or 0) + 1
            values = _dump_all({**fields, "created_at": now, "created_by": user}, JSON_FEATURE)
            c.execute(feature_versions.insert().values(name=name, version=version, **values))
        return version

    def tables(self) -> list[dict[str, Any]]:
        """Every table: its row, with ``latest`` (the newest version number) and ``versions`` (how many)."""
        with self.db.read() as c:
            rows = c.execute(sa.select(feature_tables).order_by(feature_tables.c.name)).mappings().all()
            counts = {
                name: (latest, n)
                for name, latest, n in c.execute(
                    sa.select(feature_versions.c.name, sa.func.max(feature_versions.c.version), sa.func.count()).group_by(feature_versions.c.name)
                ).all()
            }
        return [{**dict(r), "latest": counts.get(r["name"], (None, 0))[0], "versions": counts.get(r["name"], (None, 0))[1]} for r in rows]

    def table(self, name: str) -> dict[str, Any] | None:
        with self.db.read() as c:
            row = c.execute(sa.select(feature_tables).where(feature_tables.c.name == name)).mappings().first()
        return None if row is None else dict(row)

    def versions(self, name: str) -> list[dict[str, Any]]:
        with self.db.read() as c:
            rows = c.execute(sa.select(feature_versions).where(feature_versions.c.name == name).order_by(feature_versions.c.version)).mappings().all()
        return [_load(r, JSON_FEATURE) for r in rows]

    def version(self, name: str, version: int | None = None) -> dict[str, Any] | None:
        """One version, or the newest when ``version`` is None."""
        query = sa.select(feature_versions).where(feature_versions.c.name == name)
        query = query.where(feature_versions.c.version == version) if version is not None else query.order_by(feature_versions.c.version.desc()).limit(1)
        with self.db.read() as c:
            row = c.execute(query).mappings().first()
        return None if row is None else _load(row, JSON_FEATURE)

    def versions_of_run(self, run_id: str) -> list[dict[str, Any]]:
        with self.db.read() as c:
            rows = (
                c.execute(sa.select(feature_versions).where(feature_versions.c.run_id == run_id).order_by(feature_versions.c.name, feature_versions.c.version))
                .mappings()
                .all()
            )
        return [_load(r, JSON_FEATURE) for r in rows]
