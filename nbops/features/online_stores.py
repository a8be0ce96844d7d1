"""The online stores: the latest row per entity of a feature table, by entity id.

Two backends with one shape (``replace``, ``lookup``, ``meta``, ``tables``):

- :class:`SqliteOnline` (the default): one SQLite file (WAL) beside the run
  store. A materialization writes a new physical table and switches the
  table's pointer to it in the same transaction, so a reader (one read
  transaction: pointer, then rows) sees the old rows or the new, never a mix.
- :class:`RedisOnline` (``redis://``): one hash per entity under a key prefix
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
import contextlib
import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa

from nbops.errors import MissingExtraError, StoreError, UsageError
from nbops.store import mask_url

__all__ = ["OnlineTable", "SqliteOnline", "RedisOnline", "open_online", "entity_key", "encode_rows", "encode_batches", "decode_rows", "decode_arrays"]

PREFIX = "nbops:features:"
_PRESENT = "@"  # a field every entity hash has, so a row of nulls is still a row (HSET needs one field)
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


def _meta(name: str, version: int, entity: str, schema: pa.Schema, rows: int, max_ts: str | None) -> dict[str, Any]:
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
        meta = _meta(name, version, entity, schema, table.num_rows, max_ts)
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


# -- Redis ---------------------------------------------------------------------------------
# KEYS[1]: the table's meta hash. ARGV: the generation the caller knows the columns of, the
# number of fields, the fields ('@' then the columns), then the entity ids. The generation
# and the rows are read in one atomic step; the rows come back as one JSON text (the
# fields hold JSON values), so the client parses one string, not a reply per value.
# Another generation than the caller's: returns just it (the caller reads its meta, asks again).
_LOOKUP = """
local gen = redis.call('HGET', KEYS[1], 'gen')
if not gen then return false end
if gen ~= ARGV[1] then return {gen} end
local n = tonumber(ARGV[2])
local fields = {}
for i = 1, n do fields[i] = ARGV[2 + i] end
local prefix = KEYS[1] .. ':' .. gen .. ':'
local rows = {}
for i = 3 + n, #ARGV do
  local vals = redis.call('HMGET', prefix .. ARGV[i], unpack(fields))
  if not vals[1] then
    rows[#rows + 1] = 'null'
  else
    for j = 2, n do if not vals[j] then vals[j] = 'null' end end
    rows[#rows + 1] = '[' .. table.concat(vals, ',', 2, n) .. ']'
  end
end
return {gen, '[' .. table.concat(rows, ',') .. ']'}
"""
_BATCH = 2000  # commands per pipeline round trip


class RedisOnline:
    """A Redis online store (``redis://[:password@]host:port/db``)."""

    kind = "redis"

    def __init__(self, url: str):
        try:
            import redis
        except ImportError:
            raise MissingExtraError("a Redis online store", "features", "redis") from None
        self.url = mask_url(url)
        self._redis = redis
        self.client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self._lookup = self.client.register_script(_LOOKUP)
        self._cache: dict[tuple[str, str], OnlineTable] = {}
        self._latest: dict[str, OnlineTable] = {}  # the generation last seen per table: its columns go with each lookup

    def _error(self, exc: Exception, doing: str) -> StoreError:
        return StoreError(f"cannot {doing} the Redis online store {self.url}: {exc}", "check that the server is up and NBOPS_ONLINE (or --online) points at it")

    def replace(self, name: str, entity: str, version: int, table: pa.Table, schema: pa.Schema, max_ts: str | None) -> dict[str, Any]:
        gen = uuid.uuid4().hex[:12]
        meta_key = PREFIX + name
        columns = schema.names
        meta = _meta(name, version, entity, schema, table.num_rows, max_ts)
        try:
            old = self.client.hget(meta_key, "gen")
            try:
                for keys, rows in encode_batches(table, entity, columns, _BATCH):
                    pipe = self.client.pipeline(transaction=False)
                    for key, row in zip(keys, rows, strict=True):
                        fields = {c: json.dumps(v) for c, v in zip(columns, row, strict=True) if v is not None}
                        pipe.hset(f"{meta_key}:{gen}:{key}", mapping={_PRESENT: "1", **fields})
                    pipe.execute()
            except BaseException:
                with contextlib.suppress(self._redis.RedisError):  # no orphan half generation left behind
                    self._drop_generation(meta_key, gen)
                raise
            self.client.hset(meta_key, mapping={**{k: str(v) for k, v in meta.items()}, "gen": gen})  # the switch: one command
            if old is not None:
                self._drop_generation(meta_key, old.decode())
        except self._redis.RedisError as exc:
            raise self._error(exc, f"write feature table {name} into") from None
        return meta

    def _drop_generation(self, meta_key: str, gen: str) -> None:
        batch = []
        for key in self.client.scan_iter(match=f"{meta_key}:{gen}:*", count=_BATCH):
            batch.append(key)
            if len(batch) >= _BATCH:
                self.client.unlink(*batch)
                batch = []
        if batch:
            self.client.unlink(*batch)

    def _table(self, name: str, gen: str | None = None) -> OnlineTable | None:
        if gen is not None and (name, gen) in self._cache:
            return self._cache[name, gen]
        raw = self.client.hgetall(PREFIX + name)
        if not raw:
            return None
        meta = {k.decode(): v.decode() for k, v in raw.items()}
        found = OnlineTable(name, meta, meta["gen"])
        self._cache[name, found.where] = found
        return found

    def meta(self, name: str) -> OnlineTable | None:
        try:
            return self._table(name)
        except self._redis.RedisError as exc:
            raise self._error(exc, "read") from None

    def tables(self) -> list[OnlineTable]:
        try:
            names = sorted(k.decode()[len(PREFIX) :] for k in self.client.scan_iter(match=PREFIX + "*", count=1000) if k.count(b":") == PREFIX.count(":"))
            return [t for n in names if (t := self._table(n)) is not None]
        except self._redis.RedisError as exc:
            raise self._error(exc, "read") from None

    def lookup(self, name: str, keys: list[str]) -> tuple[OnlineTable | None, list[list | None]]:
        try:
            meta = self._latest.get(name)
            for _ in range(4):  # the first lookup, or a switch since the last: read the meta, ask again
                fields = [_PRESENT, *(meta.columns if meta else [])]
                out = self._lookup(keys=[PREFIX + name], args=[meta.where if meta else "", len(fields), *fields, *keys])
                if not out:
                    return None, [None] * len(keys)
                if len(out) == 2:
                    return meta, json.loads(out[1])
                meta = self._table(name, out[0].decode())
                if meta is None:
                    return None, [None] * len(keys)
                self._latest[name] = meta
        except self._redis.RedisError as exc:
            raise self._error(exc, "read") from None
        raise StoreError(f"feature table {name} was rematerialized during each of four lookups in {self.url}", "look it up again")

    def close(self) -> None:
        self.client.close()


def open_online(url: str) -> SqliteOnline | RedisOnline:
    """An online store by URL: ``redis://`` / ``rediss://`` / ``unix://``, ``sqlite:///PATH`` or a file path."""
    text = str(url)
    if text.startswith(("redis://", "rediss://", "unix://")):
        return RedisOnline(text)
    if "://" in text and not text.startswith("sqlite:///"):
        raise UsageError(f"unknown online store {mask_url(text)!r}", "use redis://HOST:PORT/DB, sqlite:///PATH or a file path (NBOPS_ONLINE or online=)")
    return SqliteOnline(text.removeprefix("sqlite:///"))
