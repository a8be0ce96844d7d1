"""Wrappers for the readers that audit hooks cannot see, installed as their modules load.

Measured (tests/runtime/test_reads.py): pandas' C and pyarrow CSV engines,
``read_feather``, numpy (``load``, ``loadtxt``, ``fromfile``), joblib, torch
(also ``mmap=True``) and PIL all open files through Python, so the audit hook
sees them. pyarrow's own IO does not: ``pq.read_table``/``ParquetFile`` (and
so ``pd.read_parquet``), ``pyarrow.csv``, ``pyarrow.feather``,
``pyarrow.dataset``, ``pyarrow.json``, ``pyarrow.orc``, ``pa.memory_map``.
Those are wrapped, plus the sources no hash can cover (``pd.read_sql``,
``requests``) and remote URLs given to pandas or fsspec.

A stage usually imports pyarrow after ``begin_stage``, so patching then would
miss it; patching at the end is too late. A ``sys.meta_path`` finder patches
each module right after it executes, and ``install`` patches the ones already
loaded. Wrappers pass straight through when no stage is being tracked.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbops.runtime.reads import ReadTracker

__all__ = ["install"]

_PATH_KWARGS = ("source", "input_file", "where", "path_or_paths", "path", "filepath_or_buffer", "path_or_buf", "io", "urlpath")
# module -> (function or Class.__init__ names, what they do with their path argument)
_PATCHES: dict[str, list[tuple[str, str]]] = {
    "pyarrow": [("memory_map", "read"), ("input_stream", "read")],
    "pyarrow.parquet": [
        ("read_table", "read"),
        ("read_pandas", "read"),
        ("read_metadata", "read"),
        ("read_schema", "read"),
        ("ParquetFile.__init__", "read"),
        ("ParquetDataset.__init__", "read"),
        ("write_table", "write"),
        ("ParquetWriter.__init__", "write"),
    ],
    "pyarrow.csv": [("read_csv", "read"), ("open_csv", "read"), ("write_csv", "write")],
    "pyarrow.feather": [("read_table", "read"), ("read_feather", "read"), ("write_feather", "write")],
    "pyarrow.dataset": [("dataset", "read"), ("write_dataset", "write")],
    "pyarrow.json": [("read_json", "read")],
    "pyarrow.orc": [("read_table", "read"), ("ORCFile.__init__", "read"), ("write_table", "write")],
    # pandas writes parquet through pa.OSFile (C++, unseen): note the target at the pandas call.
    "pandas.io.parquet": [("to_parquet", "write")],
    "fsspec": [("open", "remote"), ("open_files", "remote")],
    "pandas": [("read_sql", "unseen"), ("read_sql_query", "unseen"), ("read_sql_table", "unseen")],
    "requests": [("request", "unseen"), ("get", "unseen"), ("post", "unseen")],
}
_PANDAS_READERS = "csv table fwf json parquet feather orc excel pickle xml html hdf sas stata spss".split()
_PATCHES["pandas"] += [(f"read_{kind}", "remote") for kind in _PANDAS_READERS]
_WRITE_ARG = 1  # pyarrow writers take (data, where): the path is the second argument


def install(tracker: ReadTracker) -> None:
    for name in list(_PATCHES):
        module = sys.modules.get(name)
        if module is not None:
            _patch(module, tracker)
    sys.meta_path.insert(0, _PatchOnImport(tracker))


class _PatchOnImport:
    """Finds nothing itself: lets the other finders find a watched module,
    then patches it once its loader has executed it."""

    def __init__(self, tracker: ReadTracker):
        self._tracker = tracker
        self._busy: set[str] = set()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname not in _PATCHES or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._busy.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module, tracker = spec.loader.exec_module, self._tracker

        def exec_then_patch(module):
            exec_module(module)
            _patch(module, tracker)

        spec.loader.exec_module = exec_then_patch  # this spec's own loader instance
        return spec


def _patch(module: Any, tracker: ReadTracker) -> None:
    for dotted, role in _PATCHES.get(module.__name__, ()):
        owner_name, _, attr = dotted.rpartition(".")
        owner = getattr(module, owner_name, None) if owner_name else module
        original = getattr(owner, attr, None) if owner is not None else None
        if original is None or getattr(original, "__nbops_wrapped__", False):
            continue
        label = f"{_short(module.__name__)}.{dotted.removesuffix('.__init__')}"
        wrapper = _wrap(original, role, label, tracker, is_init=attr == "__init__")
        setattr(owner, attr, wrapper)


def _wrap(original: Callable, role: str, label: str, tracker: ReadTracker, is_init: bool) -> Callable:
    offset = 1 if is_init else 0  # skip self

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if not tracker.active:
            return original(*args, **kwargs)
        if role == "unseen":
            tracker.note_unseen(f"{label}(...)")
            return _quietly(tracker, original, args, kwargs)
        index = offset + (_WRITE_ARG if role == "write" and not is_init else 0)
        target = args[index] if len(args) > index else next((kwargs[k] for k in _PATH_KWARGS if k in kwargs), None)
        for path in target if isinstance(target, (list, tuple)) else [target]:
            if not isinstance(path, (str, os.PathLike)):
                continue
            text = os.fspath(path)
            if role == "write":
                tracker.note_write(text)
            elif kwargs.get("filesystem") is not None and role == "read":
                tracker.note_unseen(f"{label}({text!r}, filesystem={type(kwargs['filesystem']).__name__})")
            elif role == "read":
                tracker.note_read(text) if _is_remote(text) else tracker.note_dir(text, whole_tree=True)
            elif _is_remote(text) and not _writes(label, args, kwargs, offset):
                tracker.note_read(text)
        return _quietly(tracker, original, args, kwargs)

    wrapper.__nbops_wrapped__ = True
    return wrapper


def _writes(label: str, args: tuple, kwargs: dict, offset: int) -> bool:
    """Whether an fsspec/pandas call with a remote URL writes rather than reads."""
    mode = kwargs.get("mode")
    if mode is None and label.startswith("fsspec") and len(args) > offset + 1:
        mode = args[offset + 1]
    return any(c in str(mode or "rb") for c in "wax")


def _quietly(tracker: ReadTracker, original: Callable, args: tuple, kwargs: dict) -> Any:
    """Run a wrapped call with the urllib/requests notes of its insides silenced:
    the wrapper already recorded the call for what it is."""
    local = tracker.local
    before = getattr(local, "quiet", False)
    local.quiet = True
    try:
        return original(*args, **kwargs)
    finally:
        local.quiet = before


def _is_remote(path: str) -> bool:
    from nbops.runtime.reads import is_remote

    return is_remote(path)


def _short(module_name: str) -> str:
    return {"pandas": "pd", "pyarrow": "pa", "pyarrow.parquet": "pq"}.get(module_name, module_name)
