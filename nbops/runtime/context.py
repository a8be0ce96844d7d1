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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["StageContext", "begin_stage", "finish_stage", "current", "read_records", "RECORD_DIR"]

RECORD_DIR = "_nbops"
TRACK_READS_ENV = "NBOPS_TRACK_READS"  # "0": record no reads (benchmarks only)


@dataclass
class StageContext:
    stage: str
    artifact_dir: Path

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
        folder = self.out_dir / RECORD_DIR
        folder.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(_jsonable(p), sort_keys=True) + "\n" for p in payloads)
        # One write() with O_APPEND: a crash can lose the last records but
        # never leaves a half line in the middle of the file.
        fd = os.open(folder / f"{kind}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)


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
    if not tracker.active:
        return  # finished already (a re-run outputs cell)
    tracker.active = False  # what collecting and saving outputs open is nbops's own
    _current.record_many("reads", tracker.collect(_current.artifact_dir))


def read_records(out_dir: str | os.PathLike, kind: str) -> list[dict]:
    """Records of ``kind`` a stage wrote into ``out_dir`` (driver side)."""
    path = Path(out_dir) / RECORD_DIR / f"{kind}.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
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
