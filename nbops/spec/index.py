"""A converted pipeline found again without analysing the notebook: ``spec.json``.

``nbops run NB`` converts the notebook into ``<store>/pipelines/<key>/``, where
the key is the hash of the notebook's path, its bytes and the nbops version
(``api.prepare``): an unchanged notebook maps to the same folder, so the stage
graph need not be built again. ``spec.json`` beside ``pipeline.yaml`` holds the
spec as JSON (reading YAML costs more than the rest of a cached run) and, per
stage notebook, its size, mtime and code hash, written atomically after
``pipeline.yaml``.

A stage notebook whose size and mtime are the recorded ones is taken as
recorded; one whose stat differs is read and its code re-hashed
(``edited_stage_notebooks``), as git does with its index: an edit always
changes the mtime or the size, and then the content decides. Anything missing,
unreadable, from another nbops version or not matching returns None, and the
caller converts again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import nbops
from nbops.spec.pipeline import SCHEMA, ParamSpec, PipelineSpec, StageSpec, write_atomic

__all__ = ["INDEX", "write_index", "load_indexed", "pipeline_key"]

INDEX = "spec.json"


def pipeline_key(notebook: Path, sha256: str) -> str:
    """The folder name of a notebook's converted pipeline: its absolute path, its bytes' hash, this nbops."""
    return hashlib.sha256(f"{notebook}\0{sha256}\0{nbops.__version__}".encode()).hexdigest()[:16]


def _stat(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def write_index(spec: PipelineSpec) -> None:
    """Write ``spec.json`` for ``spec`` (its stage notebooks as they are now); best effort."""
    assert spec.folder is not None
    data = {
        "schema": SCHEMA,
        "nbops": nbops.__version__,
        "name": spec.name,
        "source": {"path": spec.source_path, "sha256": spec.source_sha256},
        "kernel": spec.kernel_name,
        "parameters": {k: asdict(v) for k, v in spec.parameters.items()},
        "stages": [asdict(s) for s in spec.stages],
        "stat": {s.name: _stat(spec.folder / s.notebook) for s in spec.stages},
    }
    try:
        write_atomic(spec.folder / INDEX, json.dumps(data, sort_keys=True))
    except (OSError, TypeError, ValueError):
        pass  # parameters JSON cannot hold (a tuple default is fine, a set is not): YAML stays the record


def load_indexed(folder: str | os.PathLike, source_sha256: str | None = None) -> PipelineSpec | None:
    """The spec of ``folder`` from its ``spec.json``; None when there is none, it is from another
    nbops, its source hash is not ``source_sha256`` or a stage notebook no longer matches."""
    folder = Path(folder)
    try:
        data = json.loads((folder / INDEX).read_text(encoding="utf-8"))
        if data.get("schema") != SCHEMA or data.get("nbops") != nbops.__version__:
            return None
        spec = PipelineSpec(
            name=data["name"],
            source_path=data["source"]["path"],
            source_sha256=data["source"]["sha256"],
            kernel_name=data["kernel"],
            parameters={k: ParamSpec(**v) for k, v in data["parameters"].items()},
            stages=[StageSpec(**s) for s in data["stages"]],
            folder=folder.resolve(),
        )
        recorded = data["stat"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if source_sha256 is not None and spec.source_sha256 != source_sha256:
        return None
    restat = [s for s in spec.stages if recorded.get(s.name) is None or _stat(folder / s.notebook) != recorded[s.name]]
    if restat:
        from nbops.spec.converter import edited_stage_notebooks

        checked = PipelineSpec(**{**spec.__dict__, "stages": restat})
        if edited_stage_notebooks(checked):
            return None
        write_index(spec)  # same code, new stat (touched, copied): remember it
    return spec
