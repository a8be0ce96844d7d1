"""The converter: pipeline.yaml + stage notebooks, deterministic, runnable by plain papermill."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from nbops import api

EXAMPLES = Path(__file__).resolve().parents[2] / "example_notebooks"


def test_pipeline_yaml_shape(tmp_path, notebooks):
    api.convert(notebooks / "tags_all.ipynb", tmp_path / "p")
    data = yaml.safe_load((tmp_path / "p" / "pipeline.yaml").read_text())
    assert data["schema"] == "nbops.pipeline/1"
    assert data["name"] == "tags_all"
    assert not Path(data["source"]["path"]).is_absolute()
    assert (tmp_path / "p" / data["source"]["path"]).resolve() == (notebooks / "tags_all.ipynb").resolve()
    assert len(data["source"]["sha256"]) == 64
    assert data["parameters"]["scale"] == {"default": 2.5, "type": "float"}
    train = next(s for s in data["stages"] if s["name"] == "train")
    assert train["notebook"] == "stages/train.ipynb"
    assert train["upstream"] == ["make"] and train["inputs"] == {"total": "make"}
    assert train["outputs"] == ["model"] and train["cache"] is False
    assert train["resources"]["gpus"] == 1 and train["resources"]["retries"] == 2


def test_stage_notebook_layout(tmp_path, notebooks):
    api.convert(notebooks / "tags_all.ipynb", tmp_path / "p")
    nb = nbformat.read(tmp_path / "p" / "stages" / "train.ipynb", as_version=4)
    nbformat.validate(nb)
    ids = [c["id"] for c in nb.cells]
    assert ids[0] == "nbops-parameters" and nb.cells[0].metadata.tags == ["parameters"]
    assert "scale = 2.5" in nb.cells[0].source and "nbops_artifact_dir" in nb.cells[0].source
    assert "n = " not in nb.cells[0].source  # only the parameters this stage reads
    assert ids[1] == "nbops-inputs" and "load_input(nbops_artifact_dir, 'make', 'total', 'train')" in nb.cells[1].source
    assert "def double" in nb.cells[2].source  # the setup cell it needs
    assert nb.cells[3].source.startswith("model = double")
    assert ids[-1] == "nbops-outputs" and '"model": ["report"]' in nb.cells[-1].source


def test_magic_lines_are_stripped(tmp_path, notebooks):
    api.convert(notebooks / "magic.ipynb", tmp_path / "p")
    nb = nbformat.read(tmp_path / "p" / "stages" / "train.ipynb", as_version=4)
    assert not any(c.source.startswith("%%stage") for c in nb.cells)


def test_convert_is_deterministic_and_relative(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        api.convert(EXAMPLES / "churn.ipynb", out)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
        text = (a / rel).read_text()
        # No absolute path anywhere (a relative "../../x" may contain the same folder names).
        assert not re.search(r'(^|[\s"\':])/(tmp|work|home|root|usr)/', text), rel


def test_converting_twice_into_one_folder_drops_stale_stages(tmp_path, notebooks):
    out = tmp_path / "p"
    api.convert(notebooks / "kale.ipynb", out)
    api.convert(notebooks / "magic.ipynb", out)
    assert sorted(p.name for p in (out / "stages").glob("*.ipynb")) == ["evaluate.ipynb", "prepare.ipynb", "train.ipynb"]


def test_cli_convert_and_graph_json(cli, tmp_path):
    result = cli("convert", str(EXAMPLES / "sales_fanin.ipynb"), "-o", str(tmp_path / "p"))
    assert result.returncode == 0, result.stderr
    graph = json.loads(cli("graph", str(EXAMPLES / "sales_fanin.ipynb"), "--json").stdout)
    join = next(s for s in graph["stages"] if s["name"] == "join")
    assert join["upstream"] == ["clean_orders", "clean_returns"]


@pytest.mark.parametrize("example", ["churn", "digits_torch", "sales_fanin"])
def test_examples_run_under_plain_papermill(tmp_path, example):
    """Each generated stage notebook runs with the papermill CLI, in DAG order, outputs flowing."""
    out = tmp_path / "p"
    spec = api.convert(EXAMPLES / f"{example}.ipynb", out)
    artifacts = tmp_path / "artifacts"
    for stage in spec.stages:
        small = {"churn": {"n_customers": 800, "n_estimators": 10}, "digits_torch": {}, "sales_fanin": {"n_orders": 2000}}[example]
        params = [x for name, value in small.items() if name in stage.parameters for x in ("-p", name, str(value))]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "papermill",
                str(out / stage.notebook),
                str(tmp_path / f"{stage.name}.out.ipynb"),
                "-p",
                "nbops_artifact_dir",
                str(artifacts),
                "--cwd",
                str(EXAMPLES),
                "--no-progress-bar",
                *params,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        manifest = json.loads((artifacts / stage.name / "manifest.json").read_text())
        assert sorted(manifest["outputs"]) == sorted(stage.outputs)


@pytest.mark.parametrize("example", ["churn", "digits_torch", "sales_fanin"])
def test_examples_still_run_as_plain_notebooks(tmp_path, example):
    """Tags and %%stage lines never stop the notebook from running top to bottom in Jupyter."""
    result = subprocess.run(
        [sys.executable, "-m", "papermill", str(EXAMPLES / f"{example}.ipynb"), str(tmp_path / "out.ipynb"), "--cwd", str(EXAMPLES), "--no-progress-bar"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
