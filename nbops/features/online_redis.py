"""The Redis online store (``NBOPS_ONLINE=redis://HOST:PORT/DB``).

One hash per entity under a key prefix per table and generation
(``nbops:features:TABLE:GEN:ID``, fields: the feature columns as JSON values, and
``@`` so a row of nulls is still a row); the table's meta hash
(``nbops:features:TABLE``) says which generation is live. A materialization
writes the new generation with pipelined HSETs, switches the meta hash to it
(one command), then unlinks the old keys. A lookup is one Lua script: the
generation and every entity's hash read in one atomic step, so a reader never
sees half a table or a generation being deleted.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

import pyarrow as pa

from nbops.errors import MissingExtraError, StoreError
from nbops.features.online_stores import OnlineTable, encode_batches, new_meta
from nbops.store import mask_url

__all__ = ["RedisOnline", "PREFIX"]

PREFIX = "nbops:features:"
_PRESENT = "@"  # a field every entity hash has, so a row of nulls is still a row (HSET needs one field)

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
        meta = new_meta(name, version, entity, schema, table.num_rows, max_ts)
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
