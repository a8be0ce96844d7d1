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


@dataclass
class StageContext:
    stage: str
    artifact_dir: Path

    @property
    def out_dir(self) -> Path:
        return self.artifact_dir / self.stage

    def record(self, kind: str, payload: dict[str, Any]) -> None:
        """Append one record of ``kind`` (metrics, checks, inputs, artifacts)."""
        folder = self.out_dir / RECORD_DIR
        folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps(_jsonable(payload), sort_keys=True)
        # One write() of one line with O_APPEND: a crash can lose the last
        # record but never leaves a half line in the middle of the file.
        fd = os.open(folder / f"{kind}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


_current: StageContext | None = None


def begin_stage(stage: str, artifact_dir: str | os.PathLike) -> StageContext:
    """Called by a generated stage notebook before the stage's own cells."""
    global _current
    _current = StageContext(stage, Path(artifact_dir))
    _current.out_dir.mkdir(parents=True, exist_ok=True)
    return _current


def current() -> StageContext | None:
    return _current


def finish_stage() -> None:
    """Called by a generated stage notebook's outputs cell, after the user's cells:
    flushes what the stage tracked about itself (files read, modules, packages)."""
    if _current is None:
        return


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
