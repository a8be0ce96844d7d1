"""The cache sees the data a stage reads on a Ray worker too (issue 17).

The worker reads the copy of the notebook's folder that Ray ships as the
job's ``working_dir``; the driver must record, and later re-check, the files
of its own folder. Runs on the namespaced 2-node cluster of test_ray_executor.py
(its fixture and driver, reused).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import WHY_NOT, drive  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")]


def kinds(run: dict) -> dict[str, tuple[str, str]]:
    return {s["name"]: (s["reason"]["kind"], s["reason"]["detail"]) for s in run["stages"]}


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    (tmp_path / "data.csv").write_text("x\n1\n2\n")
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "a.csv").write_text("x\n10\n")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cells = [
        ("import glob\nimport pandas as pd", ["setup"]),
        ("csv_total = int(pd.read_csv('data.csv')['x'].sum())", ["stage:csv"]),
        ("glob_total = int(sum(pd.read_csv(f)['x'].sum() for f in sorted(glob.glob('parts/*.csv'))))", ["stage:globbed"]),
        ("both = csv_total + glob_total", ["stage:both"]),
        ("both", ["metrics"]),
    ]
    nb.cells = [nbformat.v4.new_code_cell(src, metadata={"tags": tags}) for src, tags in cells]
    path = tmp_path / "ray_inputs.ipynb"
    nbformat.write(nb, path)
    return path


def test_ray_stages_record_driver_paths_and_rerun_on_change(cluster, notebook):
    folder = notebook.parent
    first = drive(cluster, notebook, "--executor", "ray", timeout=420)
    assert first["status"] == "succeeded", [s["error"] for s in first["stages"] if s["error"]]
    assert first["metrics"]["both"] == 13
    by_name = {s["name"]: s for s in first["stages"]}
    assert {d["path"] for d in by_name["csv"]["data"]} == {"data.csv"}
    assert {d["path"] for d in by_name["globbed"]["data"]} == {"parts", "parts/a.csv"}
    for stage in first["stages"]:  # every path is the driver's, none a worker's working_dir copy
        for dep in stage["deps"]:
            if "abspath" in dep:
                assert dep["abspath"].startswith(str(folder.resolve()) + os.sep), dep

    later = time.time() + 5
    for path in (folder / "data.csv", folder / "parts" / "a.csv"):
        path.write_bytes(path.read_bytes())
        os.utime(path, (later, later))
    same = drive(cluster, notebook, "--executor", "ray", timeout=420)
    assert {k for k, _ in kinds(same).values()} == {"cached"}, kinds(same)

    (folder / "data.csv").write_text("x\n1\n5\n")
    (folder / "parts" / "b.csv").write_text("x\n100\n")
    changed = drive(cluster, notebook, "--executor", "ray", timeout=420)
    assert changed["status"] == "succeeded"
    why = kinds(changed)
    assert why["csv"][0] == "input" and "data.csv changed" in why["csv"][1]
    assert why["globbed"][0] == "input" and "parts" in why["globbed"][1]
    assert why["both"][0] == "upstream"
    assert changed["metrics"]["both"] == 6 + 110
