"""Cache keys: what makes a stage's result what it is.

A stage's key is the sha256 of its *key parts*: its code, the values of the
parameters it reads, the hashes of the upstream outputs it loads, the base
environment (python, kernel, nbops) and its metrics expressions. The parts
are stored with each execution, so a cache miss can be explained later
("cell 7 changed", "n_estimators: 100 -> 50"). What a stage found out only by
running (the files it read, local modules, the packages it imported) is not
in the key: those are its ``deps``, checked before reuse (``plan/reuse.py``).
Keys are kept per execution, not just the latest, so flipping a parameter
back is a hit again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from nbops.plan.params import is_secret
from nbops.spec import StageSpec
from nbops.text import first_line

__all__ = ["stage_key_parts", "cache_key", "stage_cells", "CACHE_KEY_VERSION"]

CACHE_KEY_VERSION = 2
_GENERATED = {"nbops-inputs": "the generated inputs cell", "nbops-outputs": "the generated outputs cell", "nbops-imports": "the generated imports cell"}


def _param_value(name: str, value: Any) -> Any:
    # A secret never reaches the record in clear; a digest still tells "it changed".
    if is_secret(name) and value is not None:
        return "secret:" + hashlib.sha256(f"nbops\0{name}\0{value!r}".encode()).hexdigest()[:16]
    return value


def stage_cells(stage_notebook: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The code of a stage notebook, cell by cell: what 'cell 7 changed' is computed from."""
    cells = []
    for cell in stage_notebook.get("cells", []):
        if cell.get("cell_type") != "code" or cell.get("id") == "nbops-parameters":
            continue
        source = cell.get("source") or ""
        source = "".join(source) if isinstance(source, list) else source
        origin = (cell.get("metadata") or {}).get("nbops", {}).get("source_cell")
        cells.append({
            "id": cell.get("id"),
            "index": origin,
            "sha": hashlib.sha256(source.encode()).hexdigest()[:16],
            "line": first_line(source) if origin is not None else _GENERATED.get(cell.get("id"), "a generated cell"),
        })  # fmt: skip
    return cells


def stage_key_parts(
    stage: StageSpec,
    params: Mapping[str, Any],
    inputs: Mapping[str, str],
    environment: Mapping[str, str],
    cells: list[dict[str, Any]],
) -> dict[str, Any]:
    """``inputs`` maps each input variable to the sha256 of the artifact loaded."""
    return {
        "v": CACHE_KEY_VERSION,
        "code": stage.code_sha256,
        "params": {name: _param_value(name, params.get(name)) for name in sorted(stage.parameters)},
        "inputs": dict(sorted(inputs.items())),
        "producers": dict(sorted(stage.inputs.items())),
        "env": dict(environment),
        "metrics": list(stage.metrics),
        "cells": cells,
    }


def cache_key(parts: Mapping[str, Any]) -> str:
    """The key: every part but the per-cell breakdown (``code`` covers it) and who produced an input."""
    payload = {k: v for k, v in parts.items() if k not in ("cells", "producers")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=repr).encode()).hexdigest()
