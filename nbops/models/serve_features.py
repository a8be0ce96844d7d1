"""``nbops serve --features TABLE ...``: requests carry an entity id, the service
adds the feature table's online values before the model sees the row.

The feature store (``nbops.features``) is imported only when a service uses it;
its contract here: ``entity_of(table, store=, near=) -> str`` (the entity column)
and ``online(tables, ids, store=, near=) -> DataFrame`` (one row per id, in order,
the tables' feature columns).
"""

from __future__ import annotations

from typing import Any

from nbops.models.serve_core import RequestError

__all__ = ["FeatureJoin"]


class FeatureJoin:
    def __init__(self, tables: list[str], *, store=None, near=None):
        from nbops import features

        self._features = features
        self.tables = list(tables)
        self.store, self.near = store, near
        self.entities = {t: features.entity_of(t, store=store, near=near) for t in self.tables}

    def enrich(self, frame: Any, signature: dict) -> Any:
        """``frame`` with the online features of each row's entity id added: those the
        model takes (a value the request already carries wins); entity columns the
        model does not take are dropped. An id a table has no online row for is a 422 naming it."""
        import pandas as pd

        wanted = {c["name"] for c in signature.get("columns", [])} if signature.get("kind") == "frame" else None
        by_entity: dict[str, list[str]] = {}
        for table, entity in self.entities.items():
            by_entity.setdefault(entity, []).append(table)
        frame = frame.reset_index(drop=True)
        for entity, tables in by_entity.items():
            if entity not in frame.columns:
                raise RequestError(
                    422, f"missing column {entity!r}: the entity id of the feature table(s) {', '.join(tables)}", f"send {entity} in every record", [entity]
                )
            ids = frame[entity].tolist()
            found = self._features.online(tables, ids, store=self.store, near=self.near)
            missing = {t: m for t, m in (found.attrs.get("missing") or {}).items() if m}
            if missing:
                said = "; ".join(f"{t} has no online row for {entity} {', '.join(map(str, m))}" for t, m in missing.items())
                raise RequestError(422, said, f"send ids the tables hold, or materialize them: nbops features materialize {' '.join(missing)}", [entity])
            found = found.reset_index(drop=True)
            # A table usually holds more columns than one model takes: add only the model's.
            extra = [c for c in found.columns if c not in frame.columns and (wanted is None or c in wanted)]
            frame = pd.concat([frame, found[extra]], axis=1)
        if wanted is not None:
            frame = frame.drop(columns=[e for e in by_entity if e not in wanted])
        return frame

    def rows(self, table: str | None, ids: list[str]) -> dict:
        """``GET /features``: the online rows of ``table`` for ``ids`` (numeric ids as numbers)."""
        if table not in self.entities:
            raise RequestError(404, f"this service serves no feature table {table!r}", f"tables: {', '.join(self.tables)} (GET /features?table=T&id=1&id=2)")
        if not ids:
            raise RequestError(422, "no id given", f"GET /features?table={table}&id=ID (repeatable)", ["id"])
        keys = [int(i) if i.lstrip("-").isdigit() else i for i in ids]
        found = self._features.online([table], keys, store=self.store, near=self.near)
        from nbops.models.serve_core import frame_columns

        columns = frame_columns(found.reset_index(drop=True))
        records = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)] if columns else []
        return {"table": table, "entity": self.entities[table], "ids": keys, "rows": records}
