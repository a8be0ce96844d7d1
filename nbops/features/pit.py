"""Point-in-time training sets: each row of an entity frame joined with each feature
table's values as they were at that row's time, in DuckDB (ASOF JOIN) over the
stored Parquet objects.

The rules:
- a row gets a table's latest row for its entity at or before its timestamp,
  never after (``feature_time <= row_time``); with ``ttl``, a feature row older
  than ``ttl`` at the row's time counts as missing: all that table's columns are
  null;
- an entity with no row at or before the time gets nulls;
- the result is the entity frame (its columns, index and row order untouched)
  plus each table's columns except its entity and timestamp columns;
- a column name found in more than one place (two tables, or a table and the
  entity frame) is written ``table__column`` for every table that has it;
  names found once stay as they are.

Inside a run, each table version used is recorded among the stage's inputs
(``{"path": "feature:NAME:vN", "feature", "version", "sha256"}``), so the run's
lineage, and a model registered from it, list them.
"""

from __future__ import annotations

from typing import Any

from nbops.errors import MissingExtraError, UsageError
from nbops.features.tables import is_aware, open_features, parquet_path, parse_ref, resolve
from nbops.runtime.context import current

__all__ = ["training_set", "feature_columns"]

_ROW = "__nbops_row"


def training_set(entity_df: Any, features: list[str] | str, *, timestamp: str, ttl: Any = None, store=None, near=None):
    """For each row of ``entity_df``, the values of each feature table as of ``entity_df[timestamp]``.

    ``features``: references such as ``"customer_stats:latest"`` or ``"orders_30d:v3"``;
    ``ttl``: a ``timedelta``, ``pd.Timedelta`` or a string such as ``"30d"``: older feature rows are null."""
    import pandas as pd

    duckdb = _duckdb()
    if not isinstance(entity_df, pd.DataFrame):
        raise UsageError(f"entity_df must be a pandas DataFrame, not {type(entity_df).__name__}", "pass the frame of entities and label times")
    refs = [parse_ref(r) for r in ([features] if isinstance(features, str) else list(features))]
    if not refs:
        raise UsageError("training_set needs at least one feature table", 'e.g. training_set(df, ["customer_stats:latest"], timestamp="label_time")')
    if len({r.name for r in refs}) != len(refs):
        raise UsageError(f"a table is named twice in {[str(r) for r in refs]}", "name each table once")
    if timestamp not in entity_df.columns:
        raise UsageError(f"the timestamp column {timestamp!r} is not in entity_df", f"its columns: {', '.join(map(str, entity_df.columns))}")
    ttl_us = _ttl_microseconds(ttl)
    rs, fs = open_features(store, near)
    versions = [resolve(r, features=fs) for r in refs]
    times = _entity_times(entity_df[timestamp], timestamp)
    for v in versions:
        if v["entity"] not in entity_df.columns:
            raise UsageError(
                f"entity_df has no column {v['entity']!r}, the entity of feature table {v['name']}", f"its columns: {', '.join(map(str, entity_df.columns))}"
            )
        _check_zones(v, times, timestamp)
    names = feature_columns(versions, entity_df.columns)
    keys = sorted({v["entity"] for v in versions})
    left = pd.DataFrame({_ROW: range(len(entity_df)), "__ts": times.reset_index(drop=True)} | {k: entity_df[k].reset_index(drop=True) for k in keys})
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("entities", left)
        select, joins = [f"e.{_q(_ROW)}"], []
        for i, v in enumerate(versions):
            path = str(parquet_path(rs, v)).replace("'", "''")
            alias = f"f{i}"
            cols = [c["name"] for c in v["columns"] if c["name"] not in (v["entity"], v["timestamp"])]
            fresh = f"{alias}.__ft >= e.__ts - to_microseconds({ttl_us})" if ttl_us is not None else None
            for c in cols:
                value = f"{alias}.{_q(c)}"
                select.append(f"{f'CASE WHEN {fresh} THEN {value} END' if fresh else value} AS {_q(names[v['name']][c])}")
            sub = f"(SELECT {_q(v['entity'])} AS __fk, {_q(v['timestamp'])} AS __ft, {', '.join(_q(c) for c in cols) or 'NULL AS __none'} FROM read_parquet('{path}'))"
            joins.append(f"ASOF LEFT JOIN {sub} {alias} ON e.{_q(v['entity'])} = {alias}.__fk AND e.__ts >= {alias}.__ft")
        # No ORDER BY: putting the rows back in the entity frame's order is one scatter below,
        # where sorting 1M rows here costs as much as the join.
        sql = f"SELECT {', '.join(select)} FROM entities e {' '.join(joins)}"
        try:
            table = con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise UsageError(
                f"the point-in-time join failed: {str(exc).splitlines()[0]}", "check that entity_df's entity columns have the feature tables' types"
            ) from None
    finally:
        con.close()
    values = _in_entity_order(table).to_pandas()
    values.index = entity_df.index
    _record(versions, refs)
    return pd.concat([entity_df, values], axis=1)


def _in_entity_order(table):
    """The join's rows in the entity frame's order: row ``r`` of the frame is the one whose ``_ROW`` is r."""
    import numpy as np

    rows = table.column(_ROW).to_numpy()
    position = np.empty(len(rows), dtype=np.int64)
    position[rows] = np.arange(len(rows), dtype=np.int64)
    return table.drop_columns([_ROW]).take(position)


def feature_columns(versions: list[dict], entity_columns) -> dict[str, dict[str, str]]:
    """table -> {column: name in the training set}: ``table__column`` where a name clashes."""
    seen: dict[str, int] = {str(c): 1 for c in entity_columns}
    for v in versions:
        for c in v["columns"]:
            if c["name"] not in (v["entity"], v["timestamp"]):
                seen[c["name"]] = seen.get(c["name"], 0) + 1
    return {
        v["name"]: {
            c["name"]: (f"{v['name']}__{c['name']}" if seen[c["name"]] > 1 else c["name"])
            for c in v["columns"]
            if c["name"] not in (v["entity"], v["timestamp"])
        }
        for v in versions
    }


def _q(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _duckdb():
    try:
        import duckdb
    except ImportError:
        raise MissingExtraError("point-in-time training sets", "features", "duckdb") from None
    return duckdb


def _ttl_microseconds(ttl: Any) -> int | None:
    import pandas as pd

    if ttl is None:
        return None
    try:
        delta = pd.Timedelta(ttl)
    except (ValueError, TypeError):
        raise UsageError(f"ttl {ttl!r} is not a duration", "pass a timedelta, pd.Timedelta or a string such as '30d' or '12h'") from None
    if delta < pd.Timedelta(0) or pd.isna(delta):
        raise UsageError(f"ttl {ttl!r} is negative", "pass a duration of zero or more")
    return int(delta / pd.Timedelta(microseconds=1))


def _entity_times(col, name: str):
    import pandas as pd

    if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(col.dtype):
        return col
    try:
        return pd.to_datetime(col)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"entity_df[{name!r}] is not a time column ({exc})", "convert it with pd.to_datetime") from None


def _check_zones(v: dict, times, name: str) -> None:
    """A naive time against a timezone-aware table (or the reverse) has no single meaning: refused."""
    import pandas as pd

    table_ts = next((c["dtype"] for c in v["columns"] if c["name"] == v["timestamp"]), "")
    aware = isinstance(times.dtype, pd.DatetimeTZDtype)
    if aware != is_aware(table_ts):
        raise UsageError(
            f"entity_df[{name!r}] is {'timezone-aware' if aware else 'naive'} ({times.dtype}) but feature table {v['name']} "
            f"v{v['version']} has {'timezone-aware' if is_aware(table_ts) else 'naive'} timestamps ({table_ts})",
            "make them the same kind: .dt.tz_localize('UTC') or .dt.tz_convert(None)",
        )


def _record(versions: list[dict], refs: list) -> None:
    ctx = current()
    if ctx is None:
        return
    used = [{"path": f"feature:{v['name']}:v{v['version']}", "feature": v["name"], "version": v["version"], "sha256": v["sha256"]} for v in versions]
    ctx.record_many("inputs", used)
    # A pinned version never changes, so the stage's code says it all. ``:latest`` moves
    # when someone publishes: the version read is a dep of the stage, and the cache
    # re-checks it against the store's newest before reusing the stage (plan/fingerprint.py).
    latest = {r.name for r in refs if r.version is None}
    ctx.record_many("reads", [{"kind": "feature", "name": v["name"], "version": v["version"], "sha256": v["sha256"]} for v in versions if v["name"] in latest])
