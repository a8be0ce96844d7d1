"""Passing values between stages: atomic files, manifests, the calls stage notebooks make.

A stage's outputs go to ``<artifact_dir>/<stage>/``: one file per variable
plus ``manifest.json`` (variable -> file, serializer). A consumer loads a
variable through the producer's manifest, so it never guesses formats.

The serializers (``nbops.runtime.serializers``) are a small registry (first
match wins, by ``priority``) that plug-ins extend through the
``nbops.serializers`` entry-point group, loaded on first use; their names are
re-exported here, where the entry points of ``pyproject.toml`` point. Objects
whose classes the notebook defines cross stages by value
(``nbops.runtime.byvalue``). Every file is written to a temporary name and
renamed, so a crash never leaves a half-written artifact under its real name.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from nbops.errors import MarshalError
from nbops.runtime.context import _jsonable, begin_stage, current, finish_stage
from nbops.runtime.files import new_hasher
from nbops.runtime.serializers import (
    NumpySerializer,
    PandasSerializer,
    PickleSerializer,
    Serializer,
    SklearnSerializer,
    TorchSerializer,
    by_name,
    module_of,
    serializers,
)

__all__ = [
    "Serializer",
    "serializers",
    "save_value",
    "load_value",
    "begin",
    "load_input",
    "end",
    "MANIFEST",
    # the built-in serializers, where the entry points name them
    "PandasSerializer",
    "NumpySerializer",
    "TorchSerializer",
    "SklearnSerializer",
    "PickleSerializer",
]

MANIFEST = "manifest.json"
SCALARS = "scalars.json"


class _HashingWriter(io.RawIOBase):
    """A file wrapper that hashes what is written, as it is written: one pass, no copy.

    A big buffer is hashed in a second thread while this one writes it to the
    file (the hash and the write both release the GIL), and ``write`` returns
    only once both are done: the caller may reuse its buffer then, so nothing
    is copied to be hashed later. The driver stores the file under this digest
    without reading it again (it checks the size).
    """

    PARALLEL_MIN = 1 << 20  # below this a thread hand-off costs more than it saves

    def __init__(self, f: Any, algorithm: str | None = None):
        self.f, self.size = f, 0
        self._hash = new_hasher(algorithm)
        self._pool: Any = None

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        try:
            view = memoryview(b).cast("B")
        except TypeError:  # not C-contiguous: one copy of this piece, in order
            view = memoryview(bytes(b))
        n = view.nbytes
        if n < self.PARALLEL_MIN:
            self._hash.update(view)
            self.f.write(view)
        else:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(1, thread_name_prefix="nbops-hash")
            hashed = self._pool.submit(self._hash.update, view)
            try:
                self.f.write(view)
            finally:
                hashed.result()  # the buffer stays untouched until the hash has read it
        self.size += n
        return n

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.f.flush()

    def hexdigest(self) -> str:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        return self._hash.digest()


def save_value(folder: Path, name: str, value: Any) -> tuple[Path, str]:
    """Write ``value`` atomically as ``folder/name.<ext>``; returns (path, serializer name)."""
    path, serializer, _ = save_value_hashed(folder, name, value)
    return path, serializer


def save_value_hashed(folder: Path, name: str, value: Any) -> tuple[Path, str, str | None]:
    """Like ``save_value``, plus the file's digest when the serializer streams (else None):
    ``hash_algorithm()``'s, so sha256 or ``b3-`` BLAKE3 (``nbops.runtime.files``)."""
    folder.mkdir(parents=True, exist_ok=True)
    errors = []
    for s in serializers():
        if not s.accepts(value):
            continue
        target = folder / f"{name}{s.ext}"
        tmp = folder / f".{name}{s.ext}.tmp-{os.getpid()}"
        try:
            digest = None
            with open(tmp, "wb") as f:
                if s.streams:
                    writer = _HashingWriter(f)
                    try:
                        s.dump(value, writer)
                    finally:
                        digest = writer.hexdigest()
                else:
                    s.dump(value, f)
            os.replace(tmp, target)
            return target, s.name, digest
        except Exception as exc:  # try the next serializer, report all if none works
            errors.append(f"{s.name}: {type(exc).__name__}: {exc}")
            tmp.unlink(missing_ok=True)
    raise MarshalError("; ".join(errors) or "no serializer accepts it")


def load_value(path: Path, serializer: str) -> Any:
    return by_name(serializer).load(path)


# -- what generated stage notebooks call ----------------------------------------


def begin(stage: str, artifact_dir: str) -> None:
    """First line of a stage's inputs cell."""
    begin_stage(stage, artifact_dir)


def load_input(artifact_dir: str, producer: str, name: str, consumer: str) -> Any:
    folder = Path(artifact_dir) / producer
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        raise MarshalError(
            f"stage {consumer!r} needs {name!r} from stage {producer!r}, but {manifest_path} does not exist",
            f"run stage {producer!r} first (nbops run does), or pass -p nbops_artifact_dir=<folder holding {producer}/>",
        )
    entry = json.loads(manifest_path.read_text())["outputs"].get(name)
    if entry is None:
        raise MarshalError(
            f"stage {producer!r} did not save {name!r}, which stage {consumer!r} reads",
            f"re-convert the notebook so that {producer!r} exports {name!r}",
        )
    value = load_value(folder / entry["file"], entry["serializer"])
    if entry.get("series"):
        value = value.iloc[:, 0]
    return value


def end(
    stage: str,
    artifact_dir: str,
    namespace: dict[str, Any],
    outputs: dict[str, list[str]],
    metrics: list[str] = (),
    scalars: list[str] = (),
) -> None:
    """Last cell of a stage: save outputs, evaluate metrics, note scalars."""
    finish_stage()  # first: what the stage read, before saving outputs opens files of its own
    folder = Path(artifact_dir) / stage
    folder.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"stage": stage, "outputs": {}}
    for name, consumers in outputs.items():
        if name not in namespace:
            raise MarshalError(
                f"stage {stage!r} should produce {name!r} for {', '.join(consumers)}, but never defined it",
                f"make sure every path through stage {stage!r} assigns {name!r}",
            )
        value = namespace[name]
        try:
            path, serializer, digest = save_value_hashed(folder, name, value)
        except MarshalError as exc:
            raise MarshalError(
                f"{name!r} (a {type(value).__name__}) produced by stage {stage!r} for stage(s) "
                f"{', '.join(repr(c) for c in consumers)} cannot be saved: {exc.message}",
                f"recreate {name!r} inside the consuming stage, or build it in a 'setup' cell",
            ) from None
        entry = {"file": path.name, "serializer": serializer, "type": f"{module_of(value)}.{type(value).__name__}"}
        if digest is not None:  # the driver checks the size and stores the file under this digest
            # ("sha256" is the field's historical name: it holds a digest of any algorithm, b3- for BLAKE3)
            entry.update(sha256=digest, bytes=path.stat().st_size)
        if serializer == "pandas" and type(value).__name__ == "Series":
            entry["series"] = True
        manifest["outputs"][name] = entry
    ctx = current()
    for expr in metrics:
        try:
            value = eval(expr, namespace)  # the user's own metrics-cell expression
        except Exception as exc:
            print(f"nbops: metric {expr!r} could not be evaluated: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        if ctx is not None:
            ctx.record("metrics", {"name": expr, "value": value, "step": None})
    found = {}
    for name in scalars:
        value = namespace.get(name)
        if isinstance(value, bool) or _is_number(value):
            found[name] = _jsonable(value)
    _write_json(folder / SCALARS, found)
    _write_json(folder / MANIFEST, manifest)  # last: its presence means "outputs complete"


def _is_number(value: Any) -> bool:
    if isinstance(value, (int, float)):
        return not isinstance(value, float) or math.isfinite(value)
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        try:
            return math.isfinite(float(value))
        except (TypeError, ValueError):
            return False
    return False


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)
