"""The context of the stage a kernel is running, if any.

A generated stage notebook calls ``begin_stage`` in its inputs cell. From then
on, ``log_metric``, ``check`` and friends append JSON lines to files in the
stage's own output folder (``<artifact_dir>/<stage>/_nbops/<kind>.jsonl``);
the driver reads them back after the stage and records them in the run store.
The kernel never opens the store: that keeps workers (local or Ray) simple
and the store's single writer the driver.

Outside a run there is no context, and the same calls print what they would
record instead.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["StageContext", "begin_stage", "finish_stage", "current", "read_records", "RECORD_DIR"]

RECORD_DIR = "_nbops"
TRACK_READS_ENV = "NBOPS_TRACK_READS"  # "0": record no reads (benchmarks only)


@dataclass
class StageContext:
    stage: str
    artifact_dir: Path
    # kind -> an open O_APPEND descriptor of its .jsonl: a stage may log 100,000 metrics,
    # and making the folder and opening the file per record cost 5x the record itself.
    _fds: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def out_dir(self) -> Path:
        return self.artifact_dir / self.stage

    def record(self, kind: str, payload: dict[str, Any]) -> None:
        """Append one record of ``kind`` (metrics, checks, inputs, artifacts, reads)."""
        self.record_many(kind, [payload])

    def record_many(self, kind: str, payloads: list[dict[str, Any]]) -> None:
        """Append several records of ``kind`` in one write (a stage may read 10,000 files)."""
        if not payloads:
            return
        text = "".join(json.dumps(_jsonable(p), sort_keys=True) + "\n" for p in payloads).encode()
        # One write() with O_APPEND: a crash can lose the last records but
        # never leaves a half line in the middle of the file.
        try:
            os.write(self._fd(kind), text)
        except OSError:  # the descriptor was closed under us (user code), or the folder removed
            self._fds.pop(kind, None)
            os.write(self._fd(kind), text)

    def _fd(self, kind: str) -> int:
        fd = self._fds.get(kind)
        if fd is not None and os.fstat(fd).st_nlink == 0:  # the stage removed its folder: records go to a new file
            os.close(fd)
            fd = None
        if fd is None:
            folder = self.out_dir / RECORD_DIR
            folder.mkdir(parents=True, exist_ok=True)
            fd = self._fds[kind] = os.open(folder / f"{kind}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()


_current: StageContext | None = None


def begin_stage(stage: str, artifact_dir: str | os.PathLike) -> StageContext:
    """Called by a generated stage notebook before the stage's own cells.

    Starts tracking what the stage reads (``nbops.runtime.reads``); a warm
    kernel running its next stage starts from an empty list.
    ``NBOPS_TRACK_READS=0`` in the kernel's environment turns tracking off;
    it exists for benchmarks/bench_inputs.py, which measures what tracking
    costs. The stage then records no deps, and its cache sees only its code,
    parameters and upstream outputs.
    """
    global _current
    from nbops.runtime import reads

    _current = StageContext(stage, Path(artifact_dir))
    _current.out_dir.mkdir(parents=True, exist_ok=True)
    if os.environ.get(TRACK_READS_ENV, "1") == "0":
        return _current
    tracker = reads.install()
    tracker.active = False
    tracker.reset()
    tracker.active = True
    return _current


def current() -> StageContext | None:
    return _current


def finish_stage() -> None:
    """Called by a generated stage notebook's outputs cell, after the user's cells:
    flushes what the stage tracked about itself (files read, modules, packages)."""
    if _current is None:
        return
    from nbops.runtime import reads

    tracker = reads.tracker
    if tracker.active:  # else finished already (a re-run outputs cell)
        tracker.active = False  # what collecting and saving outputs open is nbops's own
        _current.record_many("reads", tracker.collect(_current.artifact_dir))
    _current.close()  # the driver reads the records next; a later record (outputs cell) reopens


def read_records(out_dir: str | os.PathLike, kind: str) -> list[dict]:
    """Records of ``kind`` a stage wrote into ``out_dir`` (driver side)."""
    path = Path(out_dir) / RECORD_DIR / f"{kind}.jsonl"
    if not path.exists():
        return []
    text = path.read_text()
    try:  # one parse for the whole file: 2x faster than line by line on 100,000 metrics
        return json.loads("[" + ",".join(line for line in text.splitlines() if line) + "]")
    except json.JSONDecodeError:
        pass
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn last line after a crash
    return records


def _jsonable(value: Any) -> Any:
    """Numpy scalars, NaN and other near-JSON values, made JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item):
        try:
            return _jsonable(item())
        except (TypeError, ValueError):
            pass
    return str(value)
