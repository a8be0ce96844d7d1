"""Small notebooks the export tests write: one with every resource and policy tag."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import build_notebook


def resources_notebook(folder: Path) -> Path:
    """prep (cpus, memory, retries, timeout) -> train (gpus, memory, a pod label) -> report (after:train, cache:off)."""
    folder.mkdir(parents=True, exist_ok=True)
    return build_notebook(
        folder,
        [
            ("rows = 10\nlabel = 'x'", ["parameters"]),
            ("data = list(range(rows))", ["stage:prep", "cpus:2", "memory:2Gi", "retries:2", "timeout:600"]),
            ("total = sum(data)", ["stage:train", "gpus:1", "memory:512M", "label:team:ml"]),
            ("print(label)", ["stage:report", "after:train", "cache:off"]),
        ],
        name="res.ipynb",
    )


def broken_notebook(folder: Path) -> Path:
    """A name read before any stage defines it: an analysis error, as 'nbops convert' reports it."""
    folder.mkdir(parents=True, exist_ok=True)
    return build_notebook(folder, [("y = x + 1", ["stage:a"]), ("z = y", ["stage:b"])], name="broken.ipynb")
