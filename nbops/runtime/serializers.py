"""The serializers: one way each to write and read a value, in a registry plug-ins extend.

Built-ins, tried by ``priority``: pandas -> Arrow IPC, numpy -> ``.npy`` (both
streamed and hashed while written), torch -> ``torch.save``, scikit-learn ->
joblib, anything else -> pickle. Plug-ins register through the
``nbops.serializers`` entry-point group, loaded on first use.

The pickle-based ones carry notebook-defined classes and functions by value
(``nbops.runtime.byvalue`` says how and why), so a stage can use an object whose
class it never names.
"""

from __future__ import annotations

import io
import os
import pickle
import sys
from pathlib import Path
from typing import Any, ClassVar

from nbops.errors import MarshalError
from nbops.runtime import byvalue

__all__ = [
    "Serializer",
    "PandasSerializer",
    "NumpySerializer",
    "TorchSerializer",
    "SklearnSerializer",
    "PickleSerializer",
    "serializers",
    "by_name",
    "module_of",
]


class Serializer:
    """One way to write and read a value. Subclass and register by entry point.

    A plug-in sets ``name`` (recorded in the producer's manifest, so the
    consumer loads with the same serializer), ``ext`` and ``priority`` (lower is
    tried first; the pickle fallback is 100), and implements ``accepts``,
    ``dump`` (into ``f``) and ``load`` (from ``path``). Declare it in your
    package's ``pyproject.toml``::

        [project.entry-points."nbops.serializers"]
        mytype = "mypkg.nbops_io:MyTypeSerializer"

    If ``dump`` pickles (even partly), the consumer may lack classes and
    functions the value refers to: those defined in the notebook (``__main__``)
    are not importable in another stage's kernel. Pickle through
    ``nbops.runtime.byvalue`` so they travel by value:

    - ``byvalue.dumps_by_value(value)`` (bytes) or ``dump_by_value(value, f)``
      for a pickle that plain ``pickle.load`` reads back;
    - ``byvalue.dump_with_pickle_module(save, value, f)`` for a library that
      takes ``pickle_module=`` (as ``torch.save`` does): it calls
      ``save(value, f, pickle_module)``.

    Both writing forms try by reference first and, at the first notebook-defined
    object, truncate ``f`` and write again by value: ``f`` must be seekable, so
    leave ``streams`` False (or pickle into bytes with ``dumps_by_value``).

    ``dump`` raises for a value it cannot write; the next serializer is tried,
    and if none succeeds the stage fails with a MarshalError naming the value.
    ``streams`` True promises ``dump`` only writes, in order, to a file that is
    hashed while written (no seek, no tell beyond the count written).
    """

    name: ClassVar[str] = "?"
    ext: ClassVar[str] = ".bin"
    priority: ClassVar[int] = 50  # lower is tried first
    streams: ClassVar[bool] = False  # dump() only writes, in order: hashed while writing

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def dump(self, value: Any, f: io.BufferedWriter) -> None:
        raise NotImplementedError

    def load(self, path: Path) -> Any:
        raise NotImplementedError


def module_of(value: Any) -> str:
    return type(value).__module__ or ""


class PandasSerializer(Serializer):
    """DataFrames (and Series) as Arrow IPC files, read back zero-copy from a memory map.

    Arrow's own file format, not Parquet: measured here on a 1 GB frame,
    Parquet took 2.6-3.3 s to write and 5-7 s to read, Arrow IPC 0.6 s and
    0.2-0.4 s. Handing data to the next stage is a hot path; Parquet stays the
    format for data a user keeps (``df.to_parquet`` in a stage).

    Written as the table's own record batches (``write_feather`` would cut
    them every 64K rows, and a column in pieces must be copied to become one
    pandas array again). Loaded with ``_load_frame``: numeric
    columns, categorical codes and pandas 3 ``str`` columns point into the file.
    """

    name, ext, priority = "pandas", ".arrow", 10
    streams = True

    def accepts(self, value: Any) -> bool:
        if "pandas" not in sys.modules:
            return False
        import pandas as pd

        if isinstance(value, pd.Series):
            value = value.to_frame()
        # Arrow needs string column names; anything else goes to pickle.
        return isinstance(value, pd.DataFrame) and all(isinstance(c, str) for c in value.columns)

    def dump(self, value: Any, f: io.BufferedWriter) -> None:
        import pandas as pd
        import pyarrow as pa

        frame = value.to_frame() if isinstance(value, pd.Series) else value
        table = pa.Table.from_pandas(frame, preserve_index=None)
        with pa.ipc.new_file(f, table.schema) as writer:  # the Feather V2 format: same file, same readers
            writer.write_table(table)

    def load(self, path: Path) -> Any:
        try:
            return _load_frame(path)
        except Exception:  # a pandas that moved its internals: the copying read is always right
            import pyarrow.feather as feather

            return feather.read_table(path, memory_map=True).to_pandas()


def _load_frame(path: Path) -> Any:
    """A DataFrame whose columns are, where Arrow allows, the file's own pages.

    The file is mapped copy-on-write (``ACCESS_COPY``): nothing is read until a
    column is used, and a stage that changes a value in place (``df.loc[...] =``,
    ``fillna(inplace=True)``) gets a private copy of that page only: the stored
    object never changes. pyarrow marks its zero-copy arrays read-only, which
    pandas cannot assign into, so numeric columns and categorical codes are
    re-viewed as writable slices of the same private map. Columns Arrow must
    convert (booleans, floats with nulls) are copies already; other extension
    arrays (datetimes, nullable integers) are copied, so every column takes assignment.
    """
    import mmap

    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from pandas.api.internals import create_dataframe_from_blocks

    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    whole = np.frombuffer(mapped, dtype=np.uint8)
    start, end = whole.ctypes.data, whole.ctypes.data + whole.nbytes
    frame = pa.ipc.open_file(pa.BufferReader(pa.py_buffer(mapped))).read_all().to_pandas(split_blocks=True)

    def writable(a: Any) -> Any:
        if a.flags.writeable:
            return a
        at = a.ctypes.data
        if a.flags.c_contiguous and start <= at and at + a.nbytes <= end:
            return whole[at - start : at - start + a.nbytes].view(a.dtype).reshape(a.shape)
        return a.copy()

    blocks = []
    for block in frame._mgr.blocks:
        values = block.values
        if isinstance(values, np.ndarray):
            values = writable(values)
        elif isinstance(values, pd.Categorical):
            values = pd.Categorical.from_codes(writable(values.codes), dtype=values.dtype, validate=False)
        elif not hasattr(values, "_pa_array"):  # Arrow-backed arrays (str) are immutable: pandas replaces them
            values = values.copy()  # datetimes, nullable integers...: numpy arrays pyarrow made read-only
        blocks.append((values, block.mgr_locs.as_array))
    return create_dataframe_from_blocks(blocks, index=frame.index, columns=frame.columns)


class NumpySerializer(Serializer):
    name, ext, priority = "numpy", ".npy", 20
    streams = True

    def accepts(self, value: Any) -> bool:
        if "numpy" not in sys.modules:
            return False
        import numpy as np

        return isinstance(value, np.ndarray) and value.dtype != object

    def dump(self, value: Any, f: io.BufferedWriter) -> None:
        import numpy as np

        np.save(f, value, allow_pickle=False)

    MAP_MIN = 1 << 20  # smaller arrays: one read is cheaper than setting up a map

    def load(self, path: Path) -> Any:
        """Big arrays come back mapped copy-on-write, as a plain writable ndarray: pages are
        read when used, a write changes this process's copy only, never the stored file."""
        import numpy as np

        if os.path.getsize(path) < self.MAP_MIN:
            return np.load(path, allow_pickle=False)
        return np.load(path, mmap_mode="c", allow_pickle=False).view(np.ndarray)


class TorchSerializer(Serializer):
    name, ext, priority = "torch", ".pt", 30

    def accepts(self, value: Any) -> bool:
        return module_of(value).startswith("torch") or ("torch" in sys.modules and isinstance(value, sys.modules["torch"].nn.Module))

    def dump(self, value: Any, f: io.BufferedWriter) -> None:
        import torch

        byvalue.dump_with_pickle_module(lambda v, out, pm: torch.save(v, out, pickle_module=pm), value, f)

    def load(self, path: Path) -> Any:
        import torch

        # Whole modules (not just state dicts) are the common notebook case.
        return torch.load(path, weights_only=False, map_location="cpu" if not torch.cuda.is_available() else None)


class SklearnSerializer(Serializer):
    name, ext, priority = "sklearn", ".joblib", 40

    def accepts(self, value: Any) -> bool:
        if "sklearn" not in sys.modules:
            return False
        from sklearn.base import BaseEstimator

        return isinstance(value, BaseEstimator)

    def dump(self, value: Any, f: io.BufferedWriter) -> None:
        byvalue.joblib_dump_by_value(value, f)

    def load(self, path: Path) -> Any:
        import joblib

        return joblib.load(path)  # joblib's own files, and the cloudpickle ones of by-value estimators


class PickleSerializer(Serializer):
    """The fallback: pickle, with notebook-defined classes, functions and lambdas by value."""

    name, ext, priority = "pickle", ".pkl", 100

    def accepts(self, value: Any) -> bool:
        return True

    def dump(self, value: Any, f: io.BufferedWriter) -> None:
        byvalue.dump_by_value(value, f)

    def load(self, path: Path) -> Any:
        with open(path, "rb") as f:
            return pickle.load(f)  # cloudpickle output loads with plain pickle


_registry: list[Serializer] | None = None


def serializers() -> list[Serializer]:
    """Built-ins plus the ``nbops.serializers`` entry points, by priority."""
    global _registry
    if _registry is None:
        found: dict[str, Serializer] = {}
        for cls in (PandasSerializer, NumpySerializer, TorchSerializer, SklearnSerializer, PickleSerializer):
            found[cls.name] = cls()
        from importlib.metadata import entry_points

        for ep in entry_points(group="nbops.serializers"):
            try:
                cls = ep.load()
                found.setdefault(cls.name, cls())
            except Exception as exc:  # a broken plug-in must not break every stage
                print(f"nbops: serializer plug-in {ep.name!r} failed to load: {exc}", file=sys.stderr)
        _registry = sorted(found.values(), key=lambda s: s.priority)
    return _registry


def by_name(name: str) -> Serializer:
    for s in serializers():
        if s.name == name:
            return s
    raise MarshalError(f"no serializer named {name!r} is installed", "install the package that provides it")
