"""The magics in a REAL kernel (papermill): a notebook that converts with
``nbops convert`` and shows its own graph, run and runs with %nbops."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import papermill
import pytest
from nbformat.v4 import new_code_cell

from nbops import api

from .conftest import pipeline_cells, write_notebook

NAME = "demo.ipynb"


def skip_cell(source: str):
    return new_code_cell("%%skip\n" + source)


@pytest.fixture
def executed(tmp_path: Path) -> tuple[Path, nbformat.NotebookNode]:
    """root/sub/demo.ipynb run by papermill in its folder, like a kernel that jupyter_server starts."""
    folder = tmp_path / "root" / "sub"
    cells = [
        *pipeline_cells(),
        skip_cell(f"%nbops graph --notebook {NAME}"),
        # The run starts its own kernels for the stages; this cell is %%skip so the pipeline never recurses.
        skip_cell(f"%nbops run --notebook {NAME} -p n=4"),
        skip_cell(f"%nbops runs --notebook {NAME}"),
        skip_cell(f"from nbops import api\nrun_id = api.list_runs({NAME!r})[0]['id']"),
        skip_cell(f"%nbops show {{run_id}} --notebook {NAME}"),
        # What jupyter_server sets: the API path, relative to the server root (root/).
        skip_cell(f"%env JPY_SESSION_NAME=sub/{NAME}"),
        skip_cell("%nbops graph"),
        skip_cell("import os\nos.environ['JPY_SESSION_NAME'] = os.path.abspath('demo.ipynb')\n%nbops runs"),
    ]
    nb_path = write_notebook(folder / NAME, cells)
    out = tmp_path / "executed.ipynb"
    papermill.execute_notebook(str(nb_path), str(out), cwd=str(folder), kernel_name="python3", progress_bar=False)
    return nb_path, nbformat.read(out, as_version=4)


def outputs(nb, index: int, mime: str) -> list[str]:
    return [o["data"][mime] for o in nb.cells[index].outputs if mime in o.get("data", {})]


def test_magics_in_a_real_kernel(executed, tmp_path):
    nb_path, nb = executed
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]

    # %nbops graph: both mimetypes, every stage, the saved-version note
    (graph_html,) = outputs(nb, 4, "text/html")
    assert "prepare" in graph_html and "total" in graph_html and "items ← prepare" in graph_html
    assert "as saved at" in graph_html
    assert "total" in outputs(nb, 4, "text/plain")[0]

    # %nbops run: one display, redrawn to the final run: each stage succeeded
    run_outputs = nb.cells[5].outputs
    assert [o["output_type"] for o in run_outputs] == ["display_data"]
    (run_html,) = outputs(nb, 5, "text/html")
    for stage in ("prepare", "total"):
        assert f"<b>{stage}</b>" in run_html
    assert run_html.count("nbops-status-succeeded") == 3  # the run and its two stages
    assert "n=4" in run_html
    run = api.list_runs(nb_path)[0]
    assert run["status"] == "succeeded" and run["params"] == {"n": 4}
    assert run["id"] in run_html

    (runs_html,) = outputs(nb, 6, "text/html")
    assert run["id"] in runs_html and "nbops-status-succeeded" in runs_html
    (show_html,) = outputs(nb, 8, "text/html")
    assert run["id"] in show_html and "<b>total</b>" in show_html

    # found from JPY_SESSION_NAME, relative to the server root, then absolute
    (found_html,) = outputs(nb, 10, "text/html")
    assert "items ← prepare" in found_html
    assert run["id"] in outputs(nb, 11, "text/html")[0]

    # the same notebook converts: %%stage cells are stages, the rest is left out
    spec = api.convert(nb_path, tmp_path / "pipeline")
    assert [s.name for s in spec.stages] == ["prepare", "total"]
    total = spec.stage("total")
    assert total.inputs == {"items": "prepare"} and total.upstream == ["prepare"]
    assert total.resources.get("retries") == 1
    for stage in spec.stages:
        text = json.dumps(nbformat.read(spec.folder / stage.notebook, as_version=4))
        assert "%%stage" not in text and "%nbops" not in text and "load_ext" not in text


def test_failing_cells_in_a_real_kernel(tmp_path):
    """An error in a %%stage body shows one normal traceback and fails the cell;
    a bad %%stage line fails the cell without running it."""
    from nbclient import NotebookClient

    nb = nbformat.read(write_notebook(tmp_path / "errors.ipynb", [
        new_code_cell("%load_ext nbops"),
        new_code_cell("%%stage divide\nratio = 1 / 0"),
        new_code_cell("%%stage train --gpus x\ntrained = True"),
        new_code_cell("print('trained' in dir())"),
    ]), as_version=4)  # fmt: skip
    client = NotebookClient(nb, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    divide, bad_line, check = nb.cells[1:]
    errors = [o for o in divide.outputs if o["output_type"] == "error"]
    assert len(errors) == 1 and errors[0]["ename"] == "ZeroDivisionError"
    shown = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(errors[0]["traceback"]))
    assert "ratio = 1 / 0" in shown and "run_cell_magic" not in shown and "nbops" not in shown
    assert "gpus:x is not a number" in "".join(o.get("text", "") for o in bad_line.outputs)
    assert check.outputs[0]["text"].strip() == "False"  # the bad cell's body never ran
    # and without allow_errors, "Run All" stops at the failing stage cell
    from nbclient.exceptions import CellExecutionError

    nb.cells = nb.cells[:2] + nb.cells[3:]
    for cell in nb.cells:
        cell.outputs = []
    with pytest.raises(CellExecutionError, match="ZeroDivisionError"):
        NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert nb.cells[2].outputs == []
