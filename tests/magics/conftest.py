"""A small notebook written with the pipeline magics, and an in-process IPython shell."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def write_notebook(path: Path, cells: list, kernel: str = "python3") -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def pipeline_cells() -> list:
    """Two cheap stages written with %%stage; everything else is %%skip or tagged skip."""
    return [
        new_code_cell("%load_ext nbops", metadata={"tags": ["skip"]}),
        new_code_cell("n = 3", metadata={"tags": ["parameters"]}),
        new_code_cell("%%stage prepare\nitems = list(range(n))"),
        new_code_cell("%%stage total --after prepare --retries 1\ntotal = sum(items)"),
    ]


@pytest.fixture(scope="session")
def ip():
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython()
    shell.run_line_magic("load_ext", "nbops")
    return shell


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return write_notebook(tmp_path / "demo.ipynb", [new_markdown_cell("# demo"), *pipeline_cells()])
