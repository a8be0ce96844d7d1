"""What was materialized where: one row per (feature table, online store).

SQL only; the online stores themselves (SQLite file, Redis) and the freshness
rules are in ``nbops.features.online``. ``online`` is the online store's URL
with any password masked, so the records never hold a credential.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from nbops.store.run_store import RunStore
from nbops.store.schema import feature_online

__all__ = ["FeatureOnline"]


class FeatureOnline:
    def __init__(self, store: RunStore):
        self.store = store
        self.db = store.db

    def record(self, name: str, online: str, *, version: int, rows: int, max_ts: str | None, at: float | None = None) -> dict[str, Any]:
        """``name`` v``version`` now fills ``online``: replaces that pair's previous record."""
        row = {"name": name, "online": online, "version": version, "materialized_at": time.time() if at is None else at, "rows": rows, "max_ts": max_ts}
        where = sa.and_(feature_online.c.name == name, feature_online.c.online == online)
        with self.db.write() as c:
            # Delete then insert in one transaction: the same on SQLite and PostgreSQL.
            c.execute(feature_online.delete().where(where))
            c.execute(feature_online.insert().values(**row))
        return row

    def materializations(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every record (of one table), newest first."""
        query = sa.select(feature_online)
        if name is not None:
            query = query.where(feature_online.c.name == name)
        with self.db.read() as c:
            rows = c.execute(query.order_by(feature_online.c.materialized_at.desc())).mappings().all()
        return [dict(r) for r in rows]

    def materialization(self, name: str, online: str) -> dict[str, Any] | None:
        with self.db.read() as c:
            row = c.execute(sa.select(feature_online).where(feature_online.c.name == name, feature_online.c.online == online)).mappings().first()
        return None if row is None else dict(row)
