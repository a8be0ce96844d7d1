"""Batch prediction: a registered model over a CSV or Parquet file, in chunks.

``predict_file("churn@production", "customers.csv", "scores.parquet")`` reads
the input in chunks of ``chunk_rows`` rows (``pyarrow.csv.open_csv`` or
``ParquetFile.iter_batches``), calls the model on each and appends the chunk's
predictions to the output (``ParquetWriter`` or an incremental CSV writer), so
memory stays bounded whatever the size of the input. (Chunks are predicted one
after the other: a scikit-learn forest's predict holds the GIL, so threads gain
nothing; torch, xgboost and lightgbm spread one call over the cores themselves.) Paths are local or any
fsspec URL (``s3://bucket/key.parquet``).

Before anything is written, the input's columns are checked against the
version's signature: missing, unexpected and wrongly typed columns are named in
one error. Columns that are not model inputs (ids) are refused unless passed
through with ``keep=["customer_id"]``: they are copied next to the predictions
as they were read (a CSV's kept columns as text). CSV columns are parsed with the
signature's dtypes, so an integer column the model saw as float is read as float
in every chunk, not as whatever the first block looked like.

The output holds the kept columns, then ``prediction`` (``prediction_0`` ...
``prediction_K`` when the model returns K values per row, e.g. a torch
network's logits), then ``proba_<class>`` for each class of a classifier. The
model's name, version, run and content hash go into the output's metadata: the
Parquet schema metadata (key ``nbops``, JSON); a CSV file has no metadata, so a
sidecar ``OUTPUT.nbops.json`` is written beside it.

The output is written all or nothing: to a temporary name beside it, renamed
(local) or moved (fsspec ``mv``: a server-side copy and delete on S3) once the
last chunk is written. Readers never see a partial output under the real name;
an input that fails mid-way leaves no output, and the temporary is removed.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from nbops.errors import NbopsError, UsageError
from nbops.models.registry import ModelRef, load_version, open_registry, parse_ref, resolve
from nbops.runtime import flavors

__all__ = ["predict_file", "FORMATS", "DEFAULT_CHUNK_ROWS", "SIDECAR_SUFFIX", "format_of", "metadata_of"]

FORMATS = ("csv", "parquet")
DEFAULT_CHUNK_ROWS = 100_000
SIDECAR_SUFFIX = ".nbops.json"
_EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".parq": "parquet"}
NUMERIC = ("int", "float", "bool")
_PANDAS_INDEX = re.compile(r"^__index_level_\d+__$")
_CSV_BLOCK_BYTES = 4 << 20  # what pyarrow parses at once; chunks are then cut to chunk_rows
Progress = Callable[[int, "int | None"], None]  # (rows done, total rows or None)


def format_of(path: str, given: str | None = None) -> str:
    """``csv`` or ``parquet``: ``given``, else from the file's extension."""
    if given is not None:
        if given not in FORMATS:
            raise UsageError(f"unknown file format {given!r}", f"formats: {', '.join(FORMATS)}")
        return given
    ext = os.path.splitext(path.rstrip("/"))[1].lower()
    if ext not in _EXTENSIONS:
        raise UsageError(f"cannot tell the format of {path} from its extension", "name it .csv or .parquet, or say --format csv|parquet")
    return _EXTENSIONS[ext]


def predict_file(
    ref: str | ModelRef,
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    keep: list[str] | tuple[str, ...] = (),
    input_format: str | None = None,
    output_format: str | None = None,
    store=None,
    near=None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Predict every row of ``input`` with the model ``ref`` names and write ``output``.

    Returns the model (name, version, run id), the input and output, their
    formats, the number of rows and chunks, the output's columns, the seconds
    taken and, for a CSV output, the path of its metadata sidecar."""
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise UsageError(f"chunk_rows must be a whole number of 1 or more, got {chunk_rows!r}", "e.g. --chunk-rows 100000")
    src, dst = os.fspath(input), os.fspath(output)
    in_fmt, out_fmt = format_of(src, input_format), format_of(dst, output_format)
    if _same_file(src, dst):
        raise UsageError(f"the output {dst} is the input", "write the predictions to another file")
    keep = list(dict.fromkeys(keep))
    if clash := [k for k in keep if k == "prediction" or k.startswith(("prediction_", "proba_"))]:
        raise UsageError(f"cannot keep {clash[0]!r}: the predictions use that name", "rename the column in the input")
    started = time.perf_counter()
    rs, reg = open_registry(store, near)
    version = resolve(parse_ref(ref) if isinstance(ref, str) else ref, registry=reg)
    signature, flavor = version.get("signature") or {}, version["flavor"]
    reader = _Reader(src, in_fmt, signature, keep, chunk_rows)
    reader.check(version)  # before the model is loaded (seconds for a big one) and anything is written
    model = load_version(version, rs=rs)
    meta = metadata_of(version, src)
    rows = chunks = 0
    columns: list[str] = []
    with _atomic_output(dst) as (sink, commit_sidecar):
        writer = None
        try:
            for numbered in _numbered(reader.chunks()):
                out = _predict_chunk(model, flavor, signature, numbered, keep=keep, path=src)
                if writer is None:
                    schema, columns = out.schema, out.schema.names
                    writer = _open_writer(out_fmt, sink, schema, meta)
                writer.write_table(out if out.schema == schema else out.cast(schema))
                rows, chunks = rows + out.num_rows, chunks + 1
                if progress is not None:
                    progress(rows, reader.total_rows)
            if writer is None:
                raise UsageError(f"{src} has no rows to predict", "check the input file")
        finally:
            if writer is not None:
                writer.close()
        meta["rows"] = rows
        sidecar = commit_sidecar(meta) if out_fmt == "csv" else None
    return {
        "model": {"name": version["name"], "version": version["version"], "run_id": version["run_id"]},
        "input": src, "output": dst, "input_format": in_fmt, "format": out_fmt, "rows": rows, "chunks": chunks,
        "columns": columns, "seconds": round(time.perf_counter() - started, 3), "metadata": sidecar,
    }  # fmt: skip


def metadata_of(version: dict, input: str) -> dict[str, Any]:
    """What an output records about the model that made it."""
    from nbops.store import iso

    return {
        "model": version["name"], "version": version["version"], "run_id": version["run_id"], "stage": version.get("stage"),
        "sha256": version.get("sha256"), "flavor": version.get("flavor"), "aliases": version.get("aliases") or [],
        "input": input, "created_at": iso(time.time()),
    }  # fmt: skip


# -- reading ------------------------------------------------------------------------
class _Reader:
    """The input as chunks of ``chunk_rows`` rows (Arrow tables), after a schema check."""

    def __init__(self, path: str, fmt: str, signature: dict, keep: list[str], chunk_rows: int):
        self.path, self.fmt, self.signature, self.keep, self.chunk_rows = path, fmt, signature, keep, chunk_rows
        self.total_rows: int | None = None
        self._names: list[str] = []

    def check(self, version: dict) -> None:
        """Refuse an input whose columns do not fit the signature, naming every problem."""
        schema = self._peek_schema()
        names = schema.names
        problems = [f"no column {k!r} to keep" for k in self.keep if k not in names]
        fed = schema.empty_table().select([n for n in names if n not in self.keep]).to_pandas()
        problems += flavors.input_problems(self.signature, fed)
        if self.signature.get("kind") == "array":  # every column goes into one numeric array
            problems += [f"column {n!r} has dtype {t}, expected numbers" for n, t in fed.dtypes.items() if flavors.dtype_kind(str(t)) not in NUMERIC]
        if problems:
            fix = "give the columns the model was trained on"
            if any(p.startswith("unexpected column") for p in problems):
                fix = "pass id columns through with --keep COLUMN (keep=[...]), or drop them"
            elif any(p.endswith("to keep") for p in problems):
                fix = f"--keep names a column of the input; its columns: {', '.join(names)}"
            raise UsageError(
                f"{self.path} does not fit {version['name']} v{version['version']}: " + "; ".join(problems),
                fix + f" (see: nbops models show {version['name']}@{version['version']})",
            )
        self._names = names

    def _peek_schema(self):
        """The input's columns and dtypes: Parquet's schema; a CSV's header and the types
        pyarrow infers from its first block (a column empty there takes the signature's)."""
        import pyarrow as pa

        with _input(self.path) as source:
            if self.fmt == "parquet":
                pf = _parquet_file(self.path, source)
                self.total_rows = pf.metadata.num_rows
                # pandas keeps a DataFrame's index as a column of that name: not an input
                return pa.schema([f for f in pf.schema_arrow if not _PANDAS_INDEX.match(f.name)])
            first = _first_batch(self.path, _csv_reader(self.path, source, None)).schema
        self._names = first.names
        wanted = self._arrow_types()
        return pa.schema([pa.field(f.name, wanted.get(f.name, pa.string())) if pa.types.is_null(f.type) else f for f in first])

    def _arrow_types(self) -> dict:
        """The Arrow type each input column is parsed as: the signature's, text for kept columns."""
        import pyarrow as pa

        sig = self.signature
        if sig.get("kind") == "frame":
            types = {c["name"]: _arrow_type(c["dtype"]) for c in sig["columns"]}
        elif sig.get("kind") == "array":
            t = _arrow_type(sig.get("dtype") or "float64")
            types = {n: t for n in self._names if n not in self.keep}
        else:
            types = {}
        return types | {k: pa.string() for k in self.keep}

    def chunks(self) -> Iterator[Any]:
        with _input(self.path) as source:
            if self.fmt == "parquet":
                pf = _parquet_file(self.path, source)
                batches = pf.iter_batches(batch_size=self.chunk_rows, columns=self._names, use_threads=True)
            else:
                batches = _csv_batches(self.path, _csv_reader(self.path, source, self._arrow_types()))
            yield from _rechunk(batches, self.chunk_rows)


@contextmanager
def _input(path: str) -> Iterator[Any]:
    """A local path as is (pyarrow memory-maps it), a URL as an fsspec file."""
    if _is_local(path):
        path = path.removeprefix("file://")
        if not os.path.exists(path):
            raise UsageError(f"no input file {path}", "check the path")
        yield path
        return
    import fsspec

    try:
        f = fsspec.open(path, "rb").open()
    except FileNotFoundError:
        raise UsageError(f"no input file {path}", "check the URL") from None
    try:
        yield f
    finally:
        f.close()


def _parquet_file(path: str, source: Any):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(source)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UsageError(f"{path} is not a Parquet file: {exc}", "give a .parquet file, or say --input-format csv") from None


def _csv_reader(path: str, source: Any, types: dict | None):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        return pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
            convert_options=pacsv.ConvertOptions(column_types=types or {}, strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, StopIteration) as exc:
        raise _csv_error(path, exc) from None


def _csv_batches(path: str, reader) -> Iterator[Any]:
    import pyarrow as pa

    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:  # a value later in the file that does not parse as its column's dtype
            raise _csv_error(path, exc) from None
        yield batch


def _first_batch(path: str, reader):
    for batch in _csv_batches(path, reader):
        return batch
    return reader.schema.empty_table()


def _csv_error(path: str, exc: Exception) -> UsageError:
    text = str(exc).strip() or "it is empty"
    return UsageError(
        f"{path} cannot be read as CSV with the model's column types: {text}",
        "fix that value, or check the columns and their types: nbops models show MODEL@VERSION",
    )


def _rechunk(batches, rows: int) -> Iterator[Any]:
    """Tables of exactly ``rows`` rows (the last one shorter) from batches of any size."""
    import pyarrow as pa

    pending, held = [], 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending)


def _arrow_type(dtype: str):
    """The Arrow type to parse a column of pandas/numpy dtype ``dtype`` as."""
    import numpy as np
    import pyarrow as pa

    kind = flavors.dtype_kind(dtype)
    if kind == "string":
        return pa.string()
    if kind == "bool":
        return pa.bool_()
    if kind == "datetime":
        return pa.timestamp("ns")
    try:
        return pa.from_numpy_dtype(np.dtype(str(dtype).lower()))
    except (TypeError, pa.ArrowNotImplementedError):
        return pa.float64() if kind == "float" else pa.int64() if kind == "int" else pa.string()


# -- predicting ---------------------------------------------------------------------
def _predict_chunk(model: Any, flavor: str, signature: dict, numbered: tuple[int, Any], *, keep: list[str], path: str):
    """The output rows of one chunk: kept columns as read, then predictions and probabilities."""
    import numpy as np

    offset, table = numbered
    import pyarrow as pa

    # without the schema's pandas metadata: it would bring back an index, not model inputs
    fed = table.select([n for n in table.column_names if n not in keep]).replace_schema_metadata(None)
    rows = f"rows {offset + 1}-{offset + table.num_rows}"
    try:
        inputs = flavors.as_model_input(signature, fed.to_pandas(), flavor)
    except (ValueError, TypeError) as exc:  # e.g. an empty cell in an integer column
        raise UsageError(f"{path}, {rows}: cannot convert to the model's input: {exc}", "fill or drop the empty or malformed values") from None
    try:
        out = flavors.predict(model, flavor, inputs)
    except NbopsError:
        raise
    except Exception as exc:  # noqa: BLE001 - the model's own failure, named with where it happened
        raise UsageError(f"{path}, {rows}: the model failed: {type(exc).__name__}: {exc}", "check these rows of the input") from None
    columns = {k: table.column(k) for k in keep}
    pred = np.asarray(out["predictions"])
    if pred.ndim == 2 and pred.shape[1] == 1:
        pred = pred[:, 0]
    if pred.ndim == 1:
        columns["prediction"] = pa.array(pred)
    else:
        columns |= {f"prediction_{i}": pa.array(np.ascontiguousarray(pred[:, i])) for i in range(pred.shape[1])}
    if out.get("probabilities") is not None:
        proba = np.asarray(out["probabilities"])
        columns |= {f"proba_{c}": pa.array(np.ascontiguousarray(proba[:, i])) for i, c in enumerate(out["classes"] or range(proba.shape[1]))}
    return pa.table(columns)


def _numbered(tables: Iterator[Any]) -> Iterator[tuple[int, Any]]:
    """Each table with the number of rows before it (errors name their rows)."""
    offset = 0
    for table in tables:
        yield offset, table
        offset += table.num_rows


# -- writing ------------------------------------------------------------------------
def _open_writer(fmt: str, sink: Any, schema, meta: dict):
    if fmt == "csv":
        import pyarrow.csv as pacsv

        return pacsv.CSVWriter(sink, schema)
    import pyarrow.parquet as pq

    return pq.ParquetWriter(sink, schema.with_metadata({"nbops": json.dumps(meta)}))


@contextmanager
def _atomic_output(path: str) -> Iterator[tuple[Any, Callable[[dict], str]]]:
    """Where to write the output: a temporary name beside ``path`` (a local path, or an
    open fsspec file) until the block ends without error, then renamed (moved) to
    ``path``. Yields it and a function that writes the CSV sidecar (``path`` + ``.nbops.json``)."""
    import fsspec.core

    fs, target = fsspec.core.url_to_fs(path)
    local = _is_local(path)
    parent = fs._parent(target)
    if local:
        fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/.{os.path.basename(target)}.tmp-{uuid.uuid4().hex[:12]}"
    sidecar_at: list[str] = []

    def write_sidecar(meta: dict) -> str:
        side_tmp = tmp + SIDECAR_SUFFIX
        with fs.open(side_tmp, "w") as f:
            json.dump(meta, f, indent=1)
        sidecar_at.append(side_tmp)
        return path + SIDECAR_SUFFIX

    try:
        if local:  # a path: pyarrow writes it natively, not through a Python file object
            yield tmp, write_sidecar
        else:
            with fs.open(tmp, "wb") as f:
                yield f, write_sidecar
        fs.mv(tmp, target)
        for side_tmp in sidecar_at:
            fs.mv(side_tmp, target + SIDECAR_SUFFIX)
    except BaseException:
        for leftover in [tmp, *sidecar_at]:
            try:
                fs.rm(leftover)
            except (FileNotFoundError, OSError):
                pass
        raise


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _same_file(a: str, b: str) -> bool:
    if _is_local(a) and _is_local(b):
        return os.path.abspath(a.removeprefix("file://")) == os.path.abspath(b.removeprefix("file://"))
    return a == b
