"""Strict JSON out of every surface, inf/nan parameters refused, and reads that make nothing.

Real runs (papermill, a kernel) and the real CLI in a subprocess.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from tests.conftest import run_cli


def _strict(text: str):
    """Python's json.loads refusing NaN/Infinity, as every other JSON parser does."""

    def refuse(constant: str):
        raise AssertionError(f"non-standard JSON constant {constant} in the output")

    return json.loads(text, parse_constant=refuse)


def _nan_notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("ratio = 0.5", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            'import nbops\nnbops.log_metric("m", float("nan"))\nnbops.log_metric("up", float("inf"))\nx = ratio', metadata={"tags": ["stage:score"]}
        ),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "nan.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_nan_metric_does_not_make_the_json_output_non_standard(tmp_path):
    nb = _nan_notebook(tmp_path / "work")
    done = run_cli("run", str(nb), cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    done = run_cli("runs", "ls", "--json", "--notebook", str(nb), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    runs = _strict(done.stdout)
    assert runs[0]["metrics"] == {"m": "nan", "up": "inf"}

    done = run_cli("runs", "show", "latest", "--json", "--notebook", str(nb), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert _strict(done.stdout)["stages"][0]["metrics"]["m"] == "nan"

    done = run_cli("why", "latest", "--json", "--notebook", str(nb), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    _strict(done.stdout)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity"])
def test_an_infinite_or_nan_parameter_is_refused_naming_it(tmp_path, value):
    nb = _nan_notebook(tmp_path / "work")
    done = run_cli("run", str(nb), "-p", f"ratio={value}", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "parameter ratio must be a finite number" in done.stderr
    listed = run_cli("runs", "ls", "--json", "--notebook", str(nb), cwd=tmp_path)
    assert _strict(listed.stdout) == [], "refused before a run was recorded"


READS = [
    ("runs", "ls", "--notebook", "{nb}"),
    ("runs", "ls", "--json", "--notebook", "{nb}"),
    ("runs", "show", "latest", "--notebook", "{nb}"),
    ("runs", "show", "20261130-013000-ab12cd", "--notebook", "{nb}"),
    ("why", "latest", "--notebook", "{nb}"),
    ("open", "latest", "score", "--notebook", "{nb}"),
    ("report", "latest", "-o", "{out}", "--notebook", "{nb}"),
    ("runs", "ls"),  # no --notebook: the store beside the working directory
]


@pytest.mark.parametrize("args", READS, ids=[" ".join(a[:3]) for a in READS])
def test_a_read_command_makes_no_store_and_says_no_runs_yet(tmp_path, args):
    folder = tmp_path / "some" / "dir"
    folder.mkdir(parents=True)
    nb = folder / "x.ipynb"  # need not exist: nothing should be made for it either way
    out = tmp_path / "report.html"
    done = run_cli(*(a.format(nb=nb, out=out) for a in args), cwd=folder)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["dir", "some"], done.stdout + done.stderr
    said = done.stdout + done.stderr
    if "--json" in args:
        assert done.returncode == 0 and _strict(done.stdout) == []
    else:
        assert "no runs yet" in said, said
    assert "Traceback" not in said
