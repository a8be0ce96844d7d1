"""Online features: the latest row per entity of a feature table, served by id.

``materialize("customer_stats")`` writes the latest value of every entity of a
version (the latest by default) into an online store and records it in the run
store (``feature_online``); ``online(["customer_stats"], ids)`` reads them back,
one row per id in order; ``freshness("customer_stats")`` says what is there,
how old, and how far behind the offline table.

The online store is, in order: ``online=``, ``$NBOPS_ONLINE``
(``redis://HOST:PORT/DB`` or a SQLite path), else ``online.db`` (SQLite, WAL)
in the run store's folder (its workspace for a database store).

The latest row of an entity is its row with the greatest timestamp: the same
row a point-in-time training set gives for a time at or after it, so offline
and online values agree (tests/features/test_online.py checks both backends).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbops.errors import NotFoundError, UsageError
from nbops.features.pit import feature_columns
from nbops.features.tables import FeatureRef, open_features, parquet_path, parse_ref, resolve, validate_name
from nbops.store import RunStore, iso, mask_url, store_root
from nbops.store.feature_online import FeatureOnline
from nbops.store.feature_store import FeatureStore

if TYPE_CHECKING:  # the stores import pyarrow: loaded on first use, not with nbops.features
    from nbops.features.online_redis import RedisOnline
    from nbops.features.online_stores import SqliteOnline

__all__ = ["materialize", "online", "entity_of", "freshness", "online_url", "online_tables", "ONLINE_ENV", "DEFAULT_FILE"]

ONLINE_ENV = "NBOPS_ONLINE"
DEFAULT_FILE = "online.db"

_STORES: dict[str, SqliteOnline | RedisOnline] = {}  # one client per online store and process: lookups reuse connections
_STORES_LOCK = threading.Lock()
os.register_at_fork(after_in_child=_STORES.clear)  # a forked worker opens its own connections


def online_url(online: str | os.PathLike | None = None, *, root: Path | None = None, store=None, near=None) -> str:
    """Which online store: ``online``, else $NBOPS_ONLINE, else ``online.db`` in the run store's folder ``root``."""
    chosen = online if online is not None else os.environ.get(ONLINE_ENV) or None
    if chosen is not None:
        text = str(chosen)
        if "://" in text:
            return text
        return str(Path(text).expanduser().resolve())
    if root is None:
        root = _root(store, near)
    return str(Path(root) / DEFAULT_FILE)


_ROOTS: dict[tuple, tuple[float, Path]] = {}
_ROOT_TTL = 2.0  # seconds a found store folder is reused: finding it reads nbops.toml, a millisecond a lookup need not pay


def _root(store, near) -> Path:
    key = (str(store), str(near), os.getcwd(), os.environ.get("NBOPS_STORE"))
    hit = _ROOTS.get(key)
    now = time.monotonic()
    if hit is None or now - hit[0] > _ROOT_TTL:
        hit = _ROOTS[key] = (now, store_root(store, near))
    return hit[1]


def _open(url: str) -> SqliteOnline | RedisOnline:
    from nbops.features.online_stores import open_online

    with _STORES_LOCK:
        found = _STORES.get(url)
        if found is None:
            found = _STORES[url] = open_online(url)
        return found


def _display(url: str) -> str:
    """The online store as records and surfaces show it: no password."""
    return mask_url(url)


# -- materialize ----------------------------------------------------------------------------
def latest_rows(table, entity: str, timestamp: str):
    """The row with the greatest timestamp of each entity (an Arrow table, in entity order)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return table
    order = pc.sort_indices(table, sort_keys=[(entity, "ascending"), (timestamp, "ascending")])
    ents = table.column(entity).take(order).combine_chunks()
    # The last row of each run of one entity: where the next row's entity differs.
    last = pc.not_equal(ents.slice(0, len(ents) - 1), ents.slice(1))
    keep = pa.concat_arrays([last, pa.array([True])])
    return table.take(pc.filter(order, keep))


def materialize(table: str, *, version: int | None = None, online: str | None = None, store=None, near=None) -> dict[str, Any]:
    """Write the latest value of every entity of ``table`` (its latest version, or ``version``;
    ``table`` may also be ``"NAME:v3"``) into the online store, replacing what was there at once."""
    import pyarrow.parquet as pq

    ref = parse_ref(table)
    if version is not None:
        if ref.version is not None and ref.version != version:
            raise UsageError(f"{table!r} names version v{ref.version} but version={version} was given", "name the version once")
        ref = FeatureRef(ref.name, int(version))
    started = time.perf_counter()
    rs, fs = open_features(store, near)
    v = resolve(ref, features=fs)
    entity, timestamp = v["entity"], v["timestamp"]
    offline = pq.read_table(parquet_path(rs, v))
    latest = latest_rows(offline, entity, timestamp)
    features = [c for c in latest.column_names if c not in (entity, timestamp)]
    url = online_url(online, root=rs.root)
    target = _open(url)
    target.replace(v["name"], entity, v["version"], latest, latest.select(features).schema, v.get("max_ts"))
    record = FeatureOnline(rs).record(v["name"], _display(url), version=v["version"], rows=latest.num_rows, max_ts=v.get("max_ts"))
    return {
        "name": v["name"], "version": v["version"], "online": record["online"], "kind": target.kind, "entity": entity,
        "rows": latest.num_rows, "offline_rows": offline.num_rows, "columns": features, "max_ts": v.get("max_ts"),
        "materialized_at": iso(record["materialized_at"]), "seconds": round(time.perf_counter() - started, 3),
    }  # fmt: skip


# -- lookups ----------------------------------------------------------------------------------
def online(tables: list[str] | str, ids: list, *, store=None, near=None, online: str | None = None):
    """The online features of ``ids``: one row per id, in order, with the entity column(s)
    first, then each table's feature columns (``table__column`` where names clash, as in
    ``training_set``). An id the online store does not hold gets a row of nulls, and is listed
    in ``frame.attrs["missing"]`` (table -> ids), so a caller can name it."""
    import pandas as pd
    import pyarrow as pa

    from nbops.features.online_stores import decode_arrays, entity_key

    names = [tables] if isinstance(tables, str) else list(tables)
    if not names:
        raise UsageError("online() needs at least one feature table", 'e.g. nbops.features.online(["customer_stats"], [1, 2, 3])')
    if len(set(names)) != len(names):
        raise UsageError(f"a table is named twice in {names}", "name each table once")
    for n in names:
        validate_name(n)
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
        ids = [ids]
    ids = list(ids)
    url = online_url(online, store=store, near=near)
    source = _open(url)
    keys = [entity_key(i) for i in ids]
    found = []
    for n in names:
        meta, rows = source.lookup(n, keys)
        if meta is None:
            raise NotFoundError(f"feature table {n} is not materialized in the online store {_display(url)}", f"nbops features materialize {n}")
        found.append((meta, rows))
    entities = list(dict.fromkeys(meta.entity for meta, _ in found))
    versions = [{"name": m.name, "entity": m.entity, "timestamp": None, "columns": [{"name": c} for c in m.columns]} for m, _ in found]
    renames = feature_columns(versions, entities)
    ids_array = _ids_array(ids)
    names, arrays = [], []
    if ids_array is not None:
        names, arrays = list(entities), [ids_array] * len(entities)
    for meta, rows in found:
        names += [renames[meta.name][c] for c in meta.columns]
        arrays += decode_arrays(rows, meta.schema)
    # One Arrow table, one conversion: building the frame is most of a lookup's time.
    frame = pa.Table.from_arrays(arrays, names=names).to_pandas(split_blocks=True) if arrays else pd.DataFrame(index=range(len(ids)))
    if ids_array is None:  # ids of mixed kinds: as given
        for i, e in enumerate(entities):
            frame.insert(i, e, pd.Series(ids, dtype=object))
    # Which ids a table had no row for (their values are null): a caller may refuse them by name.
    frame.attrs["missing"] = {m.name: [i for i, r in zip(ids, rows, strict=True) if r is None] for m, rows in found if None in rows}
    return frame


def _ids_array(ids: list):
    import pyarrow as pa

    try:
        return pa.array(ids)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def entity_of(table: str, store=None, near=None) -> str:
    """The entity column of a feature table (what a request must carry to be enriched)."""
    ref = parse_ref(table)
    _, fs = open_features(store, near)
    return resolve(FeatureRef(ref.name), features=fs)["entity"]


def online_tables(*, online: str | None = None, store=None, near=None) -> list[dict[str, Any]]:
    """What the online store holds: each table's version, entity, columns, rows and when it was written."""
    url = online_url(online, store=store, near=near)
    return [t.to_json() | {"online": _display(url), "materialized_at": iso(t.materialized_at)} for t in _open(url).tables()]


# -- freshness ---------------------------------------------------------------------------------
def freshness(table: str | RunStore, name: str | None = None, *, online: str | None = None, store=None, near=None) -> dict[str, Any]:
    """How fresh the online copy of a table is: ``freshness("customer_stats")`` (or ``freshness(rs, name)``
    with an open run store). From the records only (the online store itself is not contacted):

    ``materialized`` (bool), ``materialized_at``, ``age_seconds``, ``version`` (materialized) and
    ``latest_version`` (offline), ``versions_behind``, ``max_ts`` / ``offline_max_ts`` and
    ``lag_seconds`` (how far the newest online feature time is behind the offline table's),
    ``status`` ("fresh", "behind" or "never"), ``summary`` (one line) and ``elsewhere`` (the
    same table materialized in other online stores)."""
    if isinstance(table, RunStore):
        rs = table
        if name is None:
            raise UsageError("freshness(rs, name) needs the table's name", "freshness(rs, 'customer_stats')")
    else:
        rs, _ = open_features(store, near)
        name = parse_ref(table).name
    fs = FeatureStore(rs)
    latest = fs.version(name)
    if latest is None:
        raise NotFoundError(
            f"no feature table {name!r} in the store {rs.location}", "publish it first: nbops.features.publish(df, NAME, entity=COL, timestamp=COL)"
        )
    here = _display(online_url(online, root=rs.root))
    records = FeatureOnline(rs).materializations(name)
    mine = next((r for r in records if r["online"] == here), None)
    out: dict[str, Any] = {"name": name, "online": here, "latest_version": latest["version"], "offline_max_ts": latest.get("max_ts")}
    out["elsewhere"] = [_brief(r, latest) for r in records if r["online"] != here]
    if mine is None:
        return out | {
            "materialized": False, "status": "never", "materialized_at": None, "age_seconds": None, "version": None, "versions_behind": None,
            "max_ts": None, "lag_seconds": None, "rows": None, "summary": f"not materialized in {here}: nbops features materialize {name}",
        }  # fmt: skip
    return out | _brief(mine, latest)


def _brief(record: dict, latest: dict) -> dict[str, Any]:
    behind = latest["version"] - record["version"]
    lag = _seconds_between(record.get("max_ts"), latest.get("max_ts"))
    status = "fresh" if behind == 0 else "behind"
    summary = f"v{record['version']} materialized {_duration(time.time() - record['materialized_at'])} ago" + (
        "" if behind == 0 else f"; {behind} version{'s' if behind > 1 else ''} behind v{latest['version']}"
    )
    if lag:
        summary += f" (newest feature time {_duration(lag)} behind)"
    return {
        "online": record["online"], "materialized": True, "status": status, "materialized_at": iso(record["materialized_at"]),
        "age_seconds": round(time.time() - record["materialized_at"], 3), "version": record["version"], "versions_behind": behind,
        "max_ts": record.get("max_ts"), "lag_seconds": lag, "rows": record["rows"], "summary": summary,
    }  # fmt: skip


def _seconds_between(a: str | None, b: str | None) -> float | None:
    """``b - a`` in seconds for two ISO times (None when either is missing)."""
    if not a or not b:
        return None
    import pandas as pd

    try:
        return max(0.0, (pd.Timestamp(b) - pd.Timestamp(a)).total_seconds())
    except (ValueError, TypeError):
        return None


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}".replace(".0 ", " ")
    return f"{seconds:.0f} s"
