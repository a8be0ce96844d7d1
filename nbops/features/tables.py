"""Feature tables: publish a DataFrame as the next version of a named table, read a
version back, compare two versions' schemas.

A version is one Parquet object in the store's objects (content-addressed), and
a ``feature_versions`` record: schema (columns and dtypes), rows, entities, time
range, and the run and stage that produced it. Inside a stage, ``publish`` writes
the Parquet file into the stage folder and records it (as ``nbops.log_model``
does); the version is added once the run succeeded (:func:`publish_logged`,
called by ``nbops.api.run``), so its lineage is the run's. Outside a run it is
published at once, and its lineage says so.

Rules, checked for every version:
- the entity and timestamp columns exist, hold no nulls, and are the table's
  (a table keeps its entity and timestamp columns for life);
- timestamps are all naive or all timezone-aware, in a frame and across the
  table's versions;
- one row per (entity, timestamp): duplicates are refused, or with
  ``dedupe="last"`` the last of them in the frame's row order is kept;
- rows are stored sorted by (entity, timestamp) (``read`` returns them so);
- against the previous version, added columns are fine; removed or retyped
  columns are a breaking change, refused unless ``allow_breaking``.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.errors import CorruptObjectError, NotFoundError, UsageError
from nbops.runtime.context import current
from nbops.runtime.files import digest_matches
from nbops.runtime.flavors import MODEL_NAME_RE
from nbops.store import RunStore, iso, open_store, sha256_file, validate_run_id
from nbops.store.feature_store import FeatureStore
from nbops.store.objects import ObjectStore

__all__ = [
    "FeatureRef", "parse_ref", "open_features", "publish", "publish_logged", "publish_output", "resolve", "read", "parquet_path",
    "list_tables", "show", "diff", "schema_diff", "prepare_frame",
]  # fmt: skip

NAME_RE = MODEL_NAME_RE  # tables are named like models: safe in URLs, paths and shell commands
ROW_GROUP = 128 * 1024
LOGGED_PREFIX = "feature:"  # the name of a table a stage published, among its logged artifacts


@dataclass(frozen=True)
class FeatureRef:
    name: str
    version: int | None = None  # None: the latest

    def __str__(self) -> str:
        return f"{self.name}:{'latest' if self.version is None else f'v{self.version}'}"


def validate_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UsageError(f"invalid feature table name {name!r}", "use letters, digits, '_', '-' and '.', starting with a letter or digit (e.g. customer_stats)")
    return name


def parse_ref(ref: str | FeatureRef) -> FeatureRef:
    """``TABLE``, ``TABLE:latest``, ``TABLE:v3`` (or ``TABLE:3``)."""
    if isinstance(ref, FeatureRef):
        return ref
    if not isinstance(ref, str) or not ref:
        raise UsageError(f"invalid feature table reference {ref!r}", "write TABLE, TABLE:latest or TABLE:vN, e.g. customer_stats:v3")
    name, _, tail = ref.partition(":")
    validate_name(name)
    if tail in ("", "latest"):
        return FeatureRef(name)
    digits = tail[1:] if tail[:1] in ("v", "V") else tail
    if not digits.isdigit() or int(digits) < 1:
        raise UsageError(f"invalid version {tail!r} in {ref!r}", f"write {name}:latest or {name}:v1, {name}:v2, ...")
    return FeatureRef(name, int(digits))


def open_features(store: str | os.PathLike | None = None, near: str | os.PathLike | None = None, *, create: bool = False) -> tuple[RunStore, FeatureStore]:
    """The run store (found as every surface finds it: flag, environment, nbops.toml, ``.nbops/``) and its feature records."""
    rs = open_store(store, near, create=create)
    return rs, FeatureStore(rs)


def _unknown_table(fs: FeatureStore, name: str) -> NotFoundError:
    known = [t["name"] for t in fs.tables()]
    hint = f"feature tables in this store: {', '.join(known)}" if known else "publish one: nbops.features.publish(df, NAME, entity=COL, timestamp=COL)"
    return NotFoundError(f"no feature table {name!r} in the store {fs.store.location}", hint)


def resolve(ref: str | FeatureRef, *, features: FeatureStore) -> dict[str, Any]:
    """The version a reference names, with its table's ``entity``, ``timestamp`` and ``description``."""
    ref = parse_ref(ref)
    table = features.table(ref.name)
    if table is None:
        raise _unknown_table(features, ref.name)
    found = features.version(ref.name, ref.version)
    if found is None:
        latest = (features.version(ref.name) or {}).get("version")
        raise NotFoundError(f"feature table {ref.name} has no version v{ref.version}", f"its versions are v1 to v{latest}" if latest else "it has no versions")
    return found | {"entity": table["entity"], "timestamp": table["timestamp"], "description": table["description"]}


# -- checking a frame ------------------------------------------------------------------
def prepare_frame(df: Any, entity: str, timestamp: str, dedupe: str | None = None):
    """The frame as it will be stored (index reset, timestamps parsed, duplicates
    resolved), or a UsageError naming the column or row at fault."""
    import pandas as pd

    if hasattr(df, "to_pandas") and not isinstance(df, pd.DataFrame):  # a pyarrow table, a polars frame
        df = df.to_pandas()
    if not isinstance(df, pd.DataFrame):
        raise UsageError(f"a feature table is a DataFrame, not a {type(df).__name__}", "publish a pandas DataFrame (or a pyarrow Table)")
    if dedupe not in (None, "last"):
        raise UsageError(f"dedupe must be None or 'last', not {dedupe!r}", "dedupe='last' keeps the last row of each (entity, timestamp) in the frame's order")
    if entity not in df.columns and timestamp not in df.columns and entity in (df.index.names or []):
        df = df.reset_index()
    elif df.index.names != [None] and any(n in (entity, timestamp) for n in df.index.names):
        df = df.reset_index()
    for role, col in (("entity", entity), ("timestamp", timestamp)):
        if not isinstance(col, str) or col not in df.columns:
            raise UsageError(f"the {role} column {col!r} is not in the frame", f"its columns: {', '.join(map(str, df.columns))}")
    if len(set(map(str, df.columns))) != len(df.columns) or not all(isinstance(c, str) for c in df.columns):
        raise UsageError("feature table columns must be unique strings", f"rename the columns: {list(df.columns)}")
    df = df.reset_index(drop=True)
    df[timestamp] = _timestamps(df[timestamp], timestamp)
    for role, col in (("entity", entity), ("timestamp", timestamp)):
        nulls = int(df[col].isna().sum())
        if nulls:
            row = int(df[col].isna().to_numpy().nonzero()[0][0])
            raise UsageError(f"the {role} column {col!r} has {nulls} empty value(s) (first at row {row})", "drop or fill those rows before publishing")
    dup = df.duplicated([entity, timestamp], keep=False)
    if dup.any():
        if dedupe != "last":
            first = df[dup].head(1).to_dict("records")[0]  # python scalars: 1, not np.int64(1)
            raise UsageError(
                f"{int(dup.sum())} rows share an (entity, timestamp) with another row, e.g. {entity}={first[entity]!r}, {timestamp}={first[timestamp]}",
                "one row per entity and time: aggregate them, or publish with dedupe='last' (keeps the last of each in the frame's row order)",
            )
        df = df.drop_duplicates([entity, timestamp], keep="last")
    # Stored in (entity, timestamp) order: the as-of join and the latest row per entity
    # (online) both walk each entity's rows by time, and sorted input halves the join's time.
    return df.sort_values([entity, timestamp], kind="stable").reset_index(drop=True)


def _timestamps(col, name: str):
    import pandas as pd

    if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(col.dtype):
        return col
    values = col.dropna()
    aware = {getattr(v, "tzinfo", None) is not None for v in values if hasattr(v, "tzinfo")}
    if len(aware) > 1:
        raise UsageError(
            f"the timestamp column {name!r} mixes naive and timezone-aware times", "make them all one kind, e.g. pd.to_datetime(df[col], utc=True)"
        )
    try:
        return pd.to_datetime(col)
    except (ValueError, TypeError) as exc:
        mixed = "naive" in str(exc) or "tz" in str(exc).lower()
        what = "mixes naive and timezone-aware times" if mixed else f"is not a time ({exc})"
        raise UsageError(f"the timestamp column {name!r} {what}", "make them all one kind, e.g. pd.to_datetime(df[col], utc=True)") from None


def is_aware(dtype: str) -> bool:
    return dtype.startswith("datetime64[") and "," in dtype


def _kind(dtype: str) -> str:
    """A dtype as schema changes see it: the time unit of a datetime column is not a change."""
    m = re.match(r"datetime64\[\w+(, (.+))?\]", dtype)
    return f"datetime64[{m.group(2) or 'naive'}]" if m else dtype


def schema_of(df) -> list[dict[str, str]]:
    return [{"name": str(c), "dtype": str(t)} for c, t in df.dtypes.items()]


def schema_diff(old: list[dict], new: list[dict]) -> dict[str, list]:
    """Columns ``added``, ``removed`` and ``retyped`` (name, from, to) between two schemas."""
    a, b = {c["name"]: c["dtype"] for c in old}, {c["name"]: c["dtype"] for c in new}
    return {
        "added": [n for n in b if n not in a],
        "removed": [n for n in a if n not in b],
        "retyped": [{"name": n, "from": a[n], "to": b[n]} for n in a if n in b and _kind(a[n]) != _kind(b[n])],
    }


def _summary(df, entity: str, timestamp: str) -> dict[str, Any]:
    ts = df[timestamp]
    return {
        "columns": schema_of(df), "rows": len(df), "entities": int(df[entity].nunique()),
        "min_ts": ts.min().isoformat() if len(df) else None, "max_ts": ts.max().isoformat() if len(df) else None,
    }  # fmt: skip


def _check_against(fs: FeatureStore, name: str, entity: str, timestamp: str, columns: list[dict], allow_breaking: bool) -> bool:
    """Refuse what a new version may not change; returns whether it is a breaking change (allowed)."""
    table = fs.table(name)
    if table is None:
        return False
    if (table["entity"], table["timestamp"]) != (entity, timestamp):
        raise UsageError(
            f"feature table {name} is keyed by entity {table['entity']!r} and timestamp {table['timestamp']!r}, not {entity!r} and {timestamp!r}",
            f"publish with entity={table['entity']!r}, timestamp={table['timestamp']!r}, or under a new table name",
        )
    previous = fs.version(name)
    if previous is None:
        return False
    old_ts = next((c["dtype"] for c in previous["columns"] if c["name"] == timestamp), "")
    new_ts = next(c["dtype"] for c in columns if c["name"] == timestamp)
    if is_aware(old_ts) != is_aware(new_ts):
        kinds = ("timezone-aware", "naive") if is_aware(old_ts) else ("naive", "timezone-aware")
        raise UsageError(
            f"feature table {name} has {kinds[0]} timestamps (v{previous['version']}: {old_ts}); this frame's {timestamp!r} is {kinds[1]} ({new_ts})",
            "a table is one or the other: convert the column (tz_localize / tz_convert(None)) or publish under a new name",
        )
    change = schema_diff(previous["columns"], columns)
    breaking = change["removed"] or change["retyped"]
    if breaking and not allow_breaking:
        parts = [f"removes {', '.join(change['removed'])}"] if change["removed"] else []
        retyped = ", ".join(f"{r['name']} ({r['from']} → {r['to']})" for r in change["retyped"])
        parts += [f"retypes {retyped}"] if retyped else []
        raise UsageError(
            f"this version of {name} {' and '.join(parts)} (against v{previous['version']}): a breaking change",
            "publish with allow_breaking=True (CLI: --allow-breaking), or keep those columns and types",
        )
    return bool(breaking)


# -- publishing -----------------------------------------------------------------------
def publish(df: Any, name: str, *, entity: str, timestamp: str, description: str | None = None, allow_breaking: bool = False,
            dedupe: str | None = None, store=None, near=None) -> dict[str, Any]:  # fmt: skip
    """Publish ``df`` as the next version of feature table ``name``.

    Inside a stage the version is added when the run succeeds (its lineage is the
    run's); the frame is checked now. Outside a run it is published at once."""
    validate_name(name)
    frame = prepare_frame(df, entity, timestamp, dedupe)
    ctx = current()
    if ctx is not None and store is None:
        folder = ctx.out_dir / "_logged"
        path = _write_parquet(frame, folder / f".feature-{name}.parquet")
        digest = sha256_file(path)
        target = path.with_name(f"feature-{name}-{digest[:12]}.parquet")
        os.replace(path, target)
        info = {"feature": name, "entity": entity, "timestamp": timestamp, "description": description, "allow_breaking": bool(allow_breaking)}
        ctx.record("artifacts", {"name": LOGGED_PREFIX + name, "file": target.name, "kind": "parquet", **info, **_summary(frame, entity, timestamp)})
        return {"name": name, "published": "when the run succeeds", **_summary(frame, entity, timestamp)}
    rs, fs = open_features(store, near, create=True)
    with tempfile.TemporaryDirectory(prefix="nbops-feature-") as tmp:
        path = _write_parquet(frame, Path(tmp) / "table.parquet")
        return _add(rs, fs, name, frame, path, entity, timestamp, description, allow_breaking, run=None, stage=None, var=None)


def _write_parquet(frame, path: Path) -> Path:
    """Row groups of 128Ki rows: a point-in-time join reads them in parallel (pyarrow's default, 1Mi, gives 2 cores one each)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False, row_group_size=ROW_GROUP)
    return path


def _add(rs, fs, name, frame, path, entity, timestamp, description, allow_breaking, *, run, stage, var, digest=None, summary=None) -> dict[str, Any]:
    summary = summary or _summary(frame, entity, timestamp)
    breaking = _check_against(fs, name, entity, timestamp, summary["columns"], allow_breaking)
    size = os.path.getsize(path) if path is not None else None
    digest = digest or rs.objects.put_file(path)
    version = fs.add_version(
        name, entity=entity, timestamp=timestamp, description=description, run_id=run, stage=stage, var=var, sha256=digest,
        bytes=size if size is not None else summary.get("bytes"), breaking=int(breaking), **{k: summary[k] for k in ("columns", "rows", "entities", "min_ts", "max_ts")},
    )  # fmt: skip
    return version_json(resolve(FeatureRef(name, version), features=fs))


def publish_logged(rs: RunStore, run: dict) -> dict[str, list]:
    """Publish the tables that stages of a succeeded run published with ``nbops.features.publish``:
    ``{"features": [{name, version}]}``, or ``{}`` when there were none.

    Only stages that ran in this run: a stage reused from the cache published
    nothing new. A refused version (a breaking change) does not stop the others;
    the first refusal is raised after, naming the run to publish it from."""
    if run["status"] != "succeeded":
        return {}
    fs, done, refused = FeatureStore(rs), [], []
    for s in run["stages"]:
        if s.get("cached_from"):
            continue
        for logged in s.get("artifacts") or []:
            if not (logged.get("feature") and logged.get("sha256")):
                continue
            try:
                done.append({"name": logged["feature"], "version": _add_logged(rs, fs, run, s["name"], logged, logged.get("allow_breaking", False))["version"]})
            except UsageError as exc:
                refused.append((s["name"], logged, exc))
    if refused:
        stage, logged, exc = refused[0]
        raise UsageError(
            f"run {run['id']} succeeded, but its feature table {logged['feature']} (stage {stage}) was not published: {exc.message}",
            f"{exc.fix}; to publish this run's table: nbops features publish {run['id']} --stage {stage} --var {logged['name']} "
            f"--name {logged['feature']} --entity {logged['entity']} --timestamp {logged['timestamp']} --allow-breaking",
        )
    return {"features": done} if done else {}


def _add_logged(rs, fs, run, stage, logged, allow_breaking, name=None) -> dict[str, Any]:
    summary = {k: logged.get(k) for k in ("columns", "rows", "entities", "min_ts", "max_ts", "bytes")}
    return _add(rs, fs, name or logged["feature"], None, None, logged["entity"], logged["timestamp"], logged.get("description"), allow_breaking,
                run=run["id"], stage=stage, var=logged["name"], digest=logged["sha256"], summary=summary)  # fmt: skip


def publish_output(run_id: str, stage: str, var: str, name: str, *, entity: str, timestamp: str, description: str | None = None,
                   allow_breaking: bool = False, dedupe: str | None = None, store=None, near=None) -> dict[str, Any]:  # fmt: skip
    """Publish the DataFrame output ``var`` of ``stage`` in run ``run_id`` (or a table the stage
    published, ``var="feature:NAME"``) as the next version of ``name``."""
    validate_name(name)
    rs, fs = open_features(store, near)
    run = rs.get_run(validate_run_id(run_id))
    rec = next((s for s in run["stages"] if s["name"] == stage), None)
    if rec is None:
        raise NotFoundError(f"run {run_id} has no stage {stage!r}", f"stages: {', '.join(s['name'] for s in run['stages'])}")
    if rec["status"] != "succeeded":
        raise UsageError(f"stage {stage} of run {run_id} did not succeed ({rec['status']}): it has no outputs to publish", f"nbops resume {run_id}")
    logged = next((a for a in rec.get("artifacts") or [] if a.get("feature") and var in (a["name"], a["feature"])), None)
    outputs = rec.get("outputs") or {}
    if var not in outputs and logged is not None:
        if (logged["entity"], logged["timestamp"]) != (entity, timestamp):
            raise UsageError(f"{var} of stage {stage} was published with entity {logged['entity']!r} and timestamp {logged['timestamp']!r}", "pass those")
        return _add_logged(rs, fs, run, stage, logged | {"description": description or logged.get("description")}, allow_breaking, name)
    if var not in outputs:
        raise NotFoundError(f"stage {stage} of run {run_id} has no output {var!r}", f"its outputs: {', '.join(sorted(outputs)) or 'none'}")
    meta = outputs[var]
    from nbops.runtime.marshal import load_value

    with tempfile.TemporaryDirectory(prefix="nbops-feature-") as tmp:
        value = load_value(_local_object(rs, meta["sha256"], Path(tmp) / meta["file"], meta.get("bytes")), meta["serializer"])
        frame = prepare_frame(value, entity, timestamp, dedupe)
        path = _write_parquet(frame, Path(tmp) / "table.parquet")
        return _add(rs, fs, name, frame, path, entity, timestamp, description, allow_breaking, run=run["id"], stage=stage, var=var)


# -- reading --------------------------------------------------------------------------
def _local_object(rs: RunStore, digest: str, target: Path, size: int | None) -> Path:
    rs.objects.materialize(digest, target, size=size)
    if not getattr(rs.objects, "materialize_verifies", False) and not isinstance(rs.objects, ObjectStore) and not digest_matches(target, digest):
        target.unlink(missing_ok=True)
        raise CorruptObjectError(digest, "its bytes do not match its hash", target)
    return target


def parquet_path(rs: RunStore, version: dict) -> Path:
    """A local Parquet file of a version: the object itself in a folder store, else a
    verified copy kept under the workspace's ``features/`` by digest."""
    digest = version["sha256"]
    if isinstance(rs.objects, ObjectStore):
        problem = rs.objects.check(digest, version.get("bytes"))
        if problem:
            raise CorruptObjectError(digest, f"{problem} (feature table {version['name']} v{version['version']})", rs.objects.path(digest))
        return rs.objects.path(digest)
    target = rs.root / "features" / digest[:2] / f"{digest}.parquet"
    return target if target.exists() else _local_object(rs, digest, target, version.get("bytes"))


def read(ref: str, *, columns: list[str] | None = None, store=None, near=None):
    """A version of a feature table as a DataFrame: ``read("customer_stats:latest")``, ``read("customer_stats:v3")``."""
    import pandas as pd

    rs, fs = open_features(store, near)
    return pd.read_parquet(parquet_path(rs, resolve(ref, features=fs)), columns=columns)


def version_json(v: dict) -> dict[str, Any]:
    keys = (
        "name",
        "version",
        "entity",
        "timestamp",
        "rows",
        "entities",
        "min_ts",
        "max_ts",
        "columns",
        "sha256",
        "bytes",
        "run_id",
        "stage",
        "var",
        "created_by",
    )
    return {k: v.get(k) for k in keys} | {"breaking": bool(v.get("breaking")), "created_at": iso(v.get("created_at")), "ref": f"{v['name']}:v{v['version']}"}


def list_tables(*, store=None, near=None) -> list[dict[str, Any]]:
    try:
        _, fs = open_features(store, near)
    except NotFoundError:
        return []
    return [
        {"name": t["name"], "entity": t["entity"], "timestamp": t["timestamp"], "latest": t["latest"], "versions": t["versions"],
         "description": t["description"], "created_by": t["created_by"], "created_at": iso(t["created_at"])}
        for t in fs.tables()
    ]  # fmt: skip


def show(ref: str, *, store=None, near=None) -> dict[str, Any]:
    """A table with every version, and the lineage of the one ``ref`` names (the latest for a bare name)."""
    rs, fs = open_features(store, near)
    v = resolve(ref, features=fs)
    table = fs.table(v["name"])
    out = {
        "name": v["name"], "entity": table["entity"], "timestamp": table["timestamp"], "description": table["description"],
        "versions": [version_json(x | {"entity": table["entity"], "timestamp": table["timestamp"]}) for x in fs.versions(v["name"])],
        "version": version_json(v), "lineage": lineage(rs, v), "store": rs.location,
    }  # fmt: skip
    try:  # the online half (nbops/features/online.py): last materialized and lag, where it exists
        from nbops.features.online import freshness
    except ImportError:
        return out
    return out | {"online": freshness(rs, v["name"])}


def lineage(rs: RunStore, v: dict) -> dict[str, Any]:
    """Where a version came from: its run's code, data and environment, or "no run" (published interactively)."""
    if not v.get("run_id"):
        return {"run_id": None, "note": "published outside a run: no code or data lineage"}
    from nbops.models.registry import lineage as run_lineage

    return run_lineage(rs, v)


def diff(name: str, a: str | int, b: str | int, *, store=None, near=None) -> dict[str, Any]:
    """Schema and row-count changes from version ``a`` to version ``b`` of a table."""
    validate_name(name)
    _, fs = open_features(store, near)
    va, vb = (resolve(parse_ref(f"{name}:{x}"), features=fs) for x in (a, b))
    change = schema_diff(va["columns"], vb["columns"])
    return {
        "name": name, "from": va["version"], "to": vb["version"], **change, "breaking": bool(change["removed"] or change["retyped"]),
        "rows": {"from": va["rows"], "to": vb["rows"], "change": vb["rows"] - va["rows"]},
        "entities": {"from": va["entities"], "to": vb["entities"], "change": (vb["entities"] or 0) - (va["entities"] or 0)},
        "min_ts": {"from": va["min_ts"], "to": vb["min_ts"]}, "max_ts": {"from": va["max_ts"], "to": vb["max_ts"]},
    }  # fmt: skip
