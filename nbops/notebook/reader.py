"""Reading a notebook file: JSON, nbformat version, cells. Never writes.

Plain ``json``, not ``nbformat``: importing nbformat pulls in jsonschema's
format checkers, which cost seconds here, and the panel asks for the graph
on every edit. The checks nbops needs are done below.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from nbops.errors import CellIssue, NotebookError
from nbops.text import first_line  # re-exported: nbops.notebook.first_line

__all__ = ["Cell", "Notebook", "read_notebook", "notebook_from_dict", "first_line"]


@dataclass(frozen=True)
class Cell:
    index: int
    cell_type: str  # code | markdown | raw
    source: str
    tags: tuple[str, ...]

    @property
    def first_line(self) -> str:
        return first_line(self.source)


@dataclass(frozen=True)
class Notebook:
    path: str  # as the user gave it: used in messages
    cells: tuple[Cell, ...]
    kernel_name: str
    language: str
    sha256: str  # of the file bytes (or the canonical JSON when given as content)
    node: dict  # the parsed document, for the converter

    @property
    def name(self) -> str:
        return Path(self.path).stem


def read_notebook(path: str | os.PathLike) -> Notebook:
    """Read and check a notebook file; every problem is a NotebookError."""
    shown = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise NotebookError(shown, "file not found", "check the path") from None
    except OSError as exc:
        raise NotebookError(shown, f"cannot be read ({exc.strerror})", "check the path and permissions") from None
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", "?")
        raise NotebookError(
            shown,
            f"is not valid JSON (line {line}: {getattr(exc, 'msg', exc)})",
            "open it in Jupyter and save it again, or restore it from version control",
        ) from None
    return notebook_from_dict(raw, shown, hashlib.sha256(data).hexdigest())


def notebook_from_dict(raw: object, path: str, sha256: str | None = None) -> Notebook:
    if not isinstance(raw, dict) or "cells" not in raw and "worksheets" not in raw:
        raise NotebookError(path, "is not a Jupyter notebook (no 'cells')", "pass an .ipynb file")
    major = raw.get("nbformat")
    if not isinstance(major, int) or major < 4:
        raise NotebookError(
            path,
            f"uses nbformat {major}, nbops needs version 4 or later",
            f"upgrade it: jupyter nbconvert --to notebook --nbformat 4 --output upgraded.ipynb {path}",
        )
    node = raw
    if not isinstance(node.get("cells"), list) or not all(isinstance(c, dict) for c in node["cells"]):
        raise NotebookError(path, "has a malformed 'cells' list", "open and re-save it in Jupyter")
    cells = []
    for index, cell in enumerate(node.get("cells", [])):
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        if not isinstance(source, str):
            raise NotebookError(path, f"cell {index} has a malformed source", "open and re-save it in Jupyter")
        tags = (cell.get("metadata") or {}).get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise NotebookError(
                path,
                "cell metadata 'tags' is not a list of strings",
                "fix the tags in the cell's metadata",
                CellIssue("bad tags", "fix the tags", index, first_line(source)),
            )
        cells.append(Cell(index, cell.get("cell_type", "code"), source, tuple(tags)))
    meta = node.get("metadata") or {}
    kernel = meta.get("kernelspec", {}).get("name") or "python3"
    language = meta.get("kernelspec", {}).get("language") or meta.get("language_info", {}).get("name") or "python"
    if sha256 is None:
        sha256 = hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()
    return Notebook(path, tuple(cells), kernel, language, sha256, node)
