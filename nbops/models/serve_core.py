"""What every online surface of a model shares: reading a request into a frame,
checking it against the version's signature, calling the model, and swapping
versions. ``nbops serve`` (``serve.py``, Starlette) and the Ray Serve deployment
(``ray_serve.py``) are thin shells around these; see ``serve.py`` for the
contract in one place.

No web framework is imported here, so a Ray replica (or a test) uses it as is.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from typing import Any

from nbops.errors import NbopsError
from nbops.runtime import flavors

__all__ = [
    "ARROW_STREAM", "RequestError", "Loaded", "Predictor", "parse_request", "decode_request", "check_frame",
    "frame_columns", "dump_json",
]  # fmt: skip

ARROW_STREAM = "application/vnd.apache.arrow.stream"
_SCALARS = (str, int, float, bool, type(None))


class RequestError(NbopsError):
    """A request the service refuses: ``http_status`` says how (400, 401, 404, 413, 422);
    ``problems`` names each field that is wrong."""

    def __init__(self, status: int, message: str, fix: str | None = None, problems: list[str] | None = None):
        self.http_status = status
        self.problems = list(problems or [])
        super().__init__(message, fix)

    def to_json(self) -> dict:
        return super().to_json() | ({"problems": self.problems} if self.problems else {})


# -- requests -> frames -------------------------------------------------------------
def parse_request(body: bytes, content_type: str | None, signature: dict) -> Any:
    """A request body as a DataFrame checked against ``signature``; raises RequestError
    (400 for a body that is not JSON or Arrow, 422 naming each wrong field)."""
    return check_frame(decode_request(body, content_type), signature)


def decode_request(body: bytes, content_type: str | None) -> Any:
    """The rows of a body, unchecked: JSON ``{"records": [{...}, ...]}`` (or
    ``dataframe_records``, as MLflow clients send), ``{"columns": {name: [values]}}``,
    or an Arrow IPC stream."""
    import pandas as pd

    if content_type and content_type.split(";")[0].strip().lower() == ARROW_STREAM:
        return _decode_arrow(body)
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"the body is not JSON: {exc}", _BODY_FIX) from None
    except RecursionError:
        raise RequestError(400, "the body nests JSON too deeply to read", _BODY_FIX) from None
    if not isinstance(doc, dict):
        raise RequestError(422, f"the body is a JSON {type(doc).__name__}, not an object", _BODY_FIX)
    records = doc.get("records", doc.get("dataframe_records"))
    if records is not None:
        return _from_records(records)
    columns = doc.get("columns")
    if columns is not None:
        if not isinstance(columns, dict):
            raise RequestError(422, "'columns' must map column names to lists of values", _BODY_FIX)
        lengths = set()
        for name, values in columns.items():
            if not isinstance(values, list):
                raise RequestError(422, f"column {name!r} is a {type(values).__name__}, not a list of values", _BODY_FIX, [str(name)])
            _check_scalars(name, values, "columns")
            lengths.add(len(values))
        if len(lengths) > 1:
            raise RequestError(422, f"the columns have different lengths ({sorted(lengths)})", "give every column one value per row")
        return pd.DataFrame({name: _column(name, values) for name, values in columns.items()})
    raise RequestError(422, f"the body has no 'records' or 'columns' (keys: {', '.join(map(str, doc)) or 'none'})", _BODY_FIX)


_BODY_FIX = 'send {"records": [{"column": value, ...}, ...]} or {"columns": {"column": [values]}} as JSON, or an Arrow IPC stream'


def _from_records(records: Any) -> Any:
    import pandas as pd

    if not isinstance(records, list):
        raise RequestError(422, f"'records' is a {type(records).__name__}, not a list", _BODY_FIX)
    if records and all(isinstance(r, list) for r in records):
        # Rows of an array model (e.g. 64 pixels each): columns 0..n-1.
        widths = {len(r) for r in records}
        if len(widths) > 1:
            raise RequestError(422, f"the rows have different lengths ({sorted(widths)})", "send one value per input of the model in every row")
        for i, row in enumerate(records):
            for j, value in enumerate(row):
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise RequestError(422, f"records[{i}][{j}] is {_kind(value)}, expected a number", _BODY_FIX, [f"{j}"])
        return pd.DataFrame(records)
    names: dict[str, None] = {}
    for i, row in enumerate(records):
        if not isinstance(row, dict):
            raise RequestError(422, f"records[{i}] is {_kind(row)}, not an object of column: value", _BODY_FIX)
        for name, value in row.items():
            if not isinstance(value, _SCALARS):
                raise RequestError(422, f"field {name!r} of records[{i}] is {_kind(value)}, expected a single value", _BODY_FIX, [name])
            names.setdefault(name)
    return pd.DataFrame({n: _column(n, [r.get(n) for r in records]) for n in names}, index=range(len(records)))


def _column(name: str, values: list) -> Any:
    """Numbers as a numpy array (pandas builds a frame from arrays several times
    faster than from lists); anything else (strings, nulls, ints too large for
    int64) stays a list for pandas to infer, as it would from the records.
    An infinity (JSON's 1e999) is refused here, naming its column."""
    import numpy as np

    try:
        array = np.asarray(values)
    except (OverflowError, ValueError):
        return values
    if array.dtype.kind == "f" and np.isinf(array).any():
        raise RequestError(422, f"column {name!r} has an infinite value (a number too large for float64)", _BODY_FIX, [str(name)])
    return array if array.dtype.kind in "biuf" else values


def _check_scalars(name: str, values: list, where: str) -> None:
    for i, value in enumerate(values):
        if not isinstance(value, _SCALARS):
            raise RequestError(422, f"{where}[{name!r}][{i}] is {_kind(value)}, expected a single value", _BODY_FIX, [str(name)])


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list"}.get(type(value), f"a {type(value).__name__}")


def _decode_arrow(body: bytes) -> Any:
    import pyarrow as pa

    try:
        with pa.ipc.open_stream(pa.py_buffer(body)) as reader:
            table = reader.read_all()
        frame = table.to_pandas()
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise RequestError(400, f"the body is not an Arrow IPC stream: {exc}", "write it with pyarrow.ipc.new_stream(sink, table.schema)") from None
    for name, col in frame.items():
        if col.dtype.kind == "f":
            _column(str(name), col.to_numpy())
    return frame


def check_frame(frame: Any, signature: dict) -> Any:
    """``frame`` when it fits ``signature``; RequestError(422) naming every field that does not."""
    if len(frame) == 0 and frame.shape[1] == 0:
        return frame  # no rows: nothing to check, and no model call (answered with no predictions)
    problems = flavors.input_problems(signature, frame)
    if problems:
        raise RequestError(422, "the input does not match the model's signature: " + "; ".join(problems), _signature_fix(signature), problems)
    return frame


def _signature_fix(signature: dict) -> str:
    if signature.get("kind") == "frame":
        return "the model takes: " + ", ".join(f"{c['name']} ({c['dtype']})" for c in signature["columns"])
    if signature.get("kind") == "array":
        return f"the model takes rows of {signature['shape'][1:]} values ({signature.get('dtype')})"
    return _BODY_FIX


def frame_columns(frame: Any) -> dict[str, list]:
    """``{column: [values]}`` in JSON types (NaN becomes null): what request logging stores."""
    out = {}
    for name, col in frame.items():
        values = col.tolist()
        out[str(name)] = [None if isinstance(v, float) and not math.isfinite(v) else v for v in values]
    return out


def dump_json(doc: Any) -> bytes:
    """JSON bytes; a non-finite float (a regressor's NaN) becomes null rather than invalid JSON."""
    try:
        return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        return json.dumps(_finite(doc), separators=(",", ":")).encode()


def _finite(doc: Any) -> Any:
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: _finite(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_finite(v) for v in doc]
    return doc


# -- the model -------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Loaded:
    """One loaded version: what answers a request, and what the answer names."""

    name: str
    version: int
    flavor: str
    signature: dict
    model: Any = field(repr=False)
    record: dict = field(repr=False, default_factory=dict)

    @property
    def label(self) -> dict:
        return {"name": self.name, "version": self.version}


class Predictor:
    """The version ``ref`` names, kept current: ``refresh()`` re-resolves the
    reference and swaps to the version it now names; ``predict_frame`` answers.

    A request keeps the ``Loaded`` it was checked against, so a swap between its
    check and its model call changes nothing for it: old and new versions answer
    side by side until the old one's requests are done."""

    def __init__(self, ref: str, *, store=None, near=None, rs=None, version: dict | None = None):
        """``rs``: an open RunStore (else the store is found from ``store``/``near``);
        ``version``: a version record already resolved (else ``ref`` is resolved here)."""
        from nbops.models.registry import open_registry, parse_ref, resolve
        from nbops.store.registry import Registry

        self.ref = parse_ref(ref)
        if rs is not None:
            self.rs, self.registry = rs, Registry(rs)
        else:
            self.rs, self.registry = open_registry(store, near)
        self.current = self._load(version if version is not None else resolve(self.ref, registry=self.registry))
        self._refreshing = threading.Lock()

    def _load(self, record: dict) -> Loaded:
        from nbops.models.registry import load_version

        model = load_version(record, rs=self.rs)
        return Loaded(record["name"], record["version"], record["flavor"], record.get("signature") or {}, model, record)

    def refresh(self) -> Loaded | None:
        """Re-resolve the reference; when it names another version, load it and swap.
        Returns the new version, or None when nothing moved. Blocking: call it off the event loop."""
        from nbops.models.registry import resolve

        with self._refreshing:
            record = resolve(self.ref, registry=self.registry)
            if record["version"] == self.current.version:
                return None
            loaded = self._load(record)
            self.swap(loaded)
            return loaded

    def describe(self, loaded: Loaded | None = None) -> dict:
        """``GET /metadata``: the version (``models show``'s fields) with its lineage. Blocking."""
        from nbops.models.registry import ModelRef, lineage, resolve, version_json

        loaded = loaded or self.current
        v = resolve(ModelRef(loaded.name, version=loaded.version), registry=self.registry)
        return version_json(v) | {"lineage": lineage(self.rs, v), "ref": str(self.ref)}

    def swap(self, loaded: Loaded) -> None:
        """Make ``loaded`` answer new requests (one attribute store: atomic for readers)."""
        self.current = loaded

    def predict_frame(self, frame: Any, loaded: Loaded | None = None) -> dict:
        """The response body for ``frame`` (already checked): predictions, class
        probabilities for classifiers, and the version that answered."""
        (out,) = self.predict_frames([frame], loaded or self.current)
        if isinstance(out, Exception):
            raise out
        return out

    def predict_frames(self, frames: list, loaded: Loaded) -> list[dict | Exception]:
        """One model call for several requests' frames, split back per request. When
        the joint call fails, each frame is tried alone so one bad request fails alone."""

        sizes = [len(f) for f in frames]
        if sum(sizes) == 0:
            return [_body({"predictions": []}, loaded, 0, 0) for _ in frames]
        try:
            out = _predict(loaded, _joined_input(frames, loaded))
        except Exception as exc:  # noqa: BLE001 - any model error: isolate the request that caused it
            if len(frames) == 1:
                return [_model_error(exc)]
            return [self.predict_frames([f], loaded)[0] for f in frames]
        results, start = [], 0
        for n in sizes:
            results.append(_body(out, loaded, start, start + n))
            start += n
        return results


def _joined_input(frames: list, loaded: Loaded) -> Any:
    """One model input for several requests' frames. For a frame signature the
    columns are joined as arrays (16 one-row frames through ``pd.concat`` cost
    more than the forest's own prediction), then cast once."""
    import numpy as np
    import pandas as pd

    frames = [f for f in frames if len(f)]
    if len(frames) > 1 and loaded.signature.get("kind") == "frame" and all(isinstance(f, pd.DataFrame) for f in frames):
        columns: dict[str, list] = {c["name"]: [] for c in loaded.signature["columns"]}
        for f in frames:
            for name, col in f.items():
                columns[name].append(col.to_numpy())
        joined = pd.DataFrame({n: np.concatenate(arrays) for n, arrays in columns.items()})
        return flavors.as_model_input(loaded.signature, joined, loaded.flavor)
    inputs = [flavors.as_model_input(loaded.signature, f, loaded.flavor) for f in frames]
    if len(inputs) == 1:
        return inputs[0]
    if isinstance(inputs[0], pd.DataFrame):
        return pd.concat(inputs, ignore_index=True)
    return np.concatenate(inputs)


def _predict(loaded: Loaded, inputs: Any) -> dict:
    return flavors.predict(loaded.model, loaded.flavor, inputs)


def _body(out: dict, loaded: Loaded, start: int, stop: int) -> dict:
    body: dict[str, Any] = {"predictions": _rows(out["predictions"], start, stop)}
    if out.get("probabilities") is not None:
        body["probabilities"] = _rows(out["probabilities"], start, stop)
        body["classes"] = out.get("classes")
    body["model"] = loaded.label
    return body


def _rows(values: Any, start: int, stop: int) -> list:
    return values[start:stop].tolist() if hasattr(values, "tolist") else list(values)[start:stop]


def _model_error(exc: Exception) -> RequestError:
    if isinstance(exc, RequestError):
        return exc
    if isinstance(exc, NbopsError):
        return RequestError(getattr(exc, "http_status", 500), exc.message, exc.fix)
    if isinstance(exc, (ValueError, TypeError, KeyError, OverflowError)):
        return RequestError(422, f"the model rejected the input: {type(exc).__name__}: {exc}", "check the values against GET /metadata (signature)")
    return RequestError(500, f"the model failed: {type(exc).__name__}: {exc}", "see the service's log; the service keeps running")
