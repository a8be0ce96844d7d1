"""The online stores: the latest row per entity of a feature table, by entity id.

Two backends with one shape (``replace``, ``lookup``, ``meta``, ``tables``); this
module holds the SQLite one and what both share (cells, meta), ``online_redis`` the other:

- :class:`SqliteOnline` (the default): one SQLite file (WAL) beside the run
  store. A materialization writes a new physical table and switches the
  table's pointer to it in the same transaction, so a reader (one read
  transaction: pointer, then rows) sees the old rows or the new, never a mix.
- ``online_redis.RedisOnline`` (``redis://``): one hash per entity under a key prefix
  per table and generation (``nbops:features:TABLE:GEN:ID``); a
  materialization writes the new generation with pipelined HSETs, then switches
  the table's meta hash to it (one command), then unlinks the old keys. A
  lookup is one Lua script (the generation and every entity's hash read
  atomically), so it never reads a generation half deleted.

Values are stored as cells (int, float, str, bool or None; times as integers
in their unit, nested values as JSON) and turned back into the offline
column types with the Arrow schema kept in the table's meta.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa

from nbops.errors import StoreError, UsageError
from nbops.store import mask_url

__all__ = ["OnlineTable", "SqliteOnline", "open_online", "new_meta", "entity_key", "encode_rows", "encode_batches", "decode_rows", "decode_arrays"]

_SQL_VARS = 900  # ids per IN (...) query: below SQLite's oldest variable limit
_ENCODE_ROWS = 50_000  # rows turned into Python cells at a time while materializing


# -- cells: Arrow values <-> what SQLite and Redis hold -----------------------------------
def _kind(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return _kind(t.value_type)
    if pa.types.is_temporal(t):
        return "int"  # timestamps, dates, times, durations: their integer in the column's own unit
    if pa.types.is_nested(t):
        return "json"
    if pa.types.is_decimal(t):
        return "str"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "hex"
    if pa.types.is_boolean(t):
        return "bool"  # SQLite gives booleans back as 0 and 1
    return "plain"


def _int_type(t: pa.DataType) -> pa.DataType:
    return pa.int32() if t.bit_width == 32 else pa.int64()


def _cells(arr: pa.ChunkedArray) -> list:
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = t.value_type
    kind = _kind(t)
    if kind == "int":
        return arr.cast(_int_type(t)).to_pylist()
    values = arr.to_pylist()
    if kind == "json":
        return [None if v is None else json.dumps(v, default=str) for v in values]
    if kind == "str":
        return [None if v is None else str(v) for v in values]
    if kind == "hex":
        return [None if v is None else v.hex() for v in values]
    return values


def _column(values: list, field: pa.Field) -> pa.Array:
    t = field.type
    base = t.value_type if pa.types.is_dictionary(t) else t
    kind = _kind(base)
    if kind == "int":
        arr = pa.array(values, type=_int_type(base)).cast(base)
    elif kind == "json":
        arr = pa.array([None if v is None else json.loads(v) for v in values], type=base)
    elif kind == "str":
        arr = pa.array(values, type=pa.string()).cast(base)
    elif kind == "hex":
        arr = pa.array([None if v is None else bytes.fromhex(v) for v in values], type=base)
    elif kind == "bool":
        arr = pa.array([None if v is None else bool(v) for v in values], type=base)
    else:
        arr = pa.array(values, type=base)
    return arr.cast(t) if base is not t else arr


def entity_key(value: Any) -> str:
    """An entity id as the online stores key it: ``7``, ``7.0`` and ``"7"`` are one entity."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def encode_rows(table: pa.Table, entity: str, columns: list[str]) -> tuple[list[str], list[tuple]]:
    """The keys (entity ids) and cell rows of ``table`` (one row per entity)."""
    keys = [entity_key(v) for v in table.column(entity).to_pylist()]
    cols = [_cells(table.column(c)) for c in columns]
    return keys, list(zip(*cols, strict=True)) if cols else [() for _ in keys]


def encode_batches(table: pa.Table, entity: str, columns: list[str], size: int = _ENCODE_ROWS):
    """:func:`encode_rows` of ``size`` rows at a time: a million entities never sit in memory as Python objects at once."""
    for start in range(0, table.num_rows, size):
        yield encode_rows(table.slice(start, size), entity, columns)


def decode_arrays(rows: list[list | None], schema: pa.Schema) -> list[pa.Array]:
    """One Arrow array per column of ``schema`` from cell ``rows`` (None: a missing entity, all nulls)."""
    if not len(schema):
        return []
    blank = (None,) * len(schema)
    columns = list(zip(*(blank if r is None else r for r in rows), strict=True)) if rows else [() for _ in schema]
    return [_column(list(values), f) for values, f in zip(columns, schema, strict=True)]


def decode_rows(rows: list[list | None], schema: pa.Schema):
    """A DataFrame of ``rows`` in ``schema``'s column types."""
    return pa.Table.from_arrays(decode_arrays(rows, schema), schema=schema).to_pandas()


def _schema_text(schema: pa.Schema) -> str:
    return base64.b64encode(schema.remove_metadata().serialize().to_pybytes()).decode()


def _schema_of(text: str) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


# -- one table's meta, as both backends keep it ----------------------------------------------
class OnlineTable:
    """What an online store holds for one feature table (its version, entity, columns and types)."""

    __slots__ = ("name", "version", "entity", "columns", "schema", "rows", "max_ts", "materialized_at", "where")

    def __init__(self, name: str, meta: dict[str, Any], where: str):
        self.name = name
        self.version = int(meta["version"])
        self.entity = meta["entity"]
        self.schema = _schema_of(meta["schema"])
        self.columns = list(self.schema.names)
        self.rows = int(meta["rows"])
        self.max_ts = meta.get("max_ts") or None
        self.materialized_at = float(meta["materialized_at"])
        self.where = where  # the physical table (SQLite) or the generation (Redis)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "entity": self.entity, "columns": self.columns, "rows": self.rows,
                "max_ts": self.max_ts, "materialized_at": self.materialized_at}  # fmt: skip


def new_meta(name: str, version: int, entity: str, schema: pa.Schema, rows: int, max_ts: str | None) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "entity": entity,
        "schema": _schema_text(schema),
        "rows": rows,
        "max_ts": max_ts or "",
        "materialized_at": time.time(),
    }


# -- SQLite --------------------------------------------------------------------------------
class SqliteOnline:
    """The embedded online store: one SQLite file (WAL); each table's rows in a physical table of its own."""

    kind = "sqlite"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._local = threading.local()
        self._cache: dict[str, OnlineTable] = {}  # physical table -> its decoded meta (never changes)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS nbops_online (name TEXT PRIMARY KEY, physical TEXT NOT NULL, version INTEGER NOT NULL,"
                    " entity TEXT NOT NULL, schema TEXT NOT NULL, rows INTEGER NOT NULL, max_ts TEXT, materialized_at REAL NOT NULL)"
                )
            except (sqlite3.Error, OSError) as exc:
                raise StoreError(f"cannot open the online store {self.path}: {exc}", "check that the folder exists and is writable") from None
            self._local.conn = conn
        return conn

    def replace(self, name: str, entity: str, version: int, table: pa.Table, schema: pa.Schema, max_ts: str | None) -> dict[str, Any]:
        physical = f"ft_{uuid.uuid4().hex}"
        cols = ", ".join(f"c{i}" for i in range(len(schema)))
        meta = new_meta(name, version, entity, schema, table.num_rows, max_ts)
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(f"CREATE TABLE {physical} (k TEXT PRIMARY KEY{', ' + cols if cols else ''}) WITHOUT ROWID")
                marks = ", ".join("?" * (len(schema) + 1))
                for keys, rows in encode_batches(table, entity, schema.names):
                    conn.executemany(f"INSERT OR REPLACE INTO {physical} VALUES ({marks})", ((k, *r) for k, r in zip(keys, rows, strict=True)))
                old = conn.execute("SELECT physical FROM nbops_online WHERE name = ?", (name,)).fetchone()
                conn.execute(
                    "INSERT OR REPLACE INTO nbops_online VALUES (:name, :physical, :version, :entity, :schema, :rows, :max_ts, :materialized_at)",
                    {**meta, "physical": physical},
                )
                if old:
                    conn.execute(f"DROP TABLE IF EXISTS {old[0]}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot write feature table {name} into the online store {self.path}: {exc}", "check the disk and the file's permissions"
            ) from None
        return meta

    def _table(self, row: tuple) -> OnlineTable:
        physical = row[1]
        found = self._cache.get(physical)
        if found is None:
            keys = ("name", "physical", "version", "entity", "schema", "rows", "max_ts", "materialized_at")
            found = self._cache[physical] = OnlineTable(row[0], dict(zip(keys, row, strict=True)), physical)
        return found

    def meta(self, name: str) -> OnlineTable | None:
        row = self._conn().execute("SELECT * FROM nbops_online WHERE name = ?", (name,)).fetchone()
        return None if row is None else self._table(row)

    def tables(self) -> list[OnlineTable]:
        return [self._table(r) for r in self._conn().execute("SELECT * FROM nbops_online ORDER BY name").fetchall()]

    def lookup(self, name: str, keys: list[str]) -> tuple[OnlineTable | None, list[tuple | None]]:
        """The table's meta and one row of cells per key (None where the entity is unknown), from one snapshot."""
        conn = self._conn()
        conn.execute("BEGIN")  # pointer and rows from one snapshot: a concurrent replace is all or nothing
        try:
            row = conn.execute("SELECT * FROM nbops_online WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None, [None] * len(keys)
            meta = self._table(row)
            found: dict[str, tuple] = {}
            unique = list(dict.fromkeys(keys))
            for i in range(0, len(unique), _SQL_VARS):
                chunk = unique[i : i + _SQL_VARS]
                sql = f"SELECT * FROM {meta.where} WHERE k IN ({', '.join('?' * len(chunk))})"
                found.update((r[0], r[1:]) for r in conn.execute(sql, chunk))
        finally:
            conn.execute("COMMIT")
        return meta, [found.get(k) for k in keys]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def open_online(url: str):
    """An online store by URL: ``redis://`` / ``rediss://`` / ``unix://``, ``sqlite:///PATH`` or a file path."""
    text = str(url)
    if text.startswith(("redis://", "rediss://", "unix://")):
        from nbops.features.online_redis import RedisOnline

        return RedisOnline(text)
    if "://" in text and not text.startswith("sqlite:///"):
        raise UsageError(f"unknown online store {mask_url(text)!r}", "use redis://HOST:PORT/DB, sqlite:///PATH or a file path (NBOPS_ONLINE or online=)")
    return SqliteOnline(text.removeprefix("sqlite:///"))
