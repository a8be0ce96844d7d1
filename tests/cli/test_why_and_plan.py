"""`nbops why`, `nbops run --dry-run`, and the reasons in `runs show` / `runs diff` / `rerun`.

Real runs of a tiny two-stage notebook (real kernels, real store) in a scratch folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.conftest import ROOT, run_cli


def _tiny(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cells = [
        ("n = 3\nscale = 2", ["parameters"]),
        ("import nbops", ["setup"]),
        ("data = [i * scale for i in range(n)]", ["stage:make"]),
        ("total = sum(data)\nnbops.log_metric('total', total)", ["stage:total"]),
    ]
    for source, tags in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    path = folder / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, str, str]:
    """tiny.ipynb run with n=3, then n=4: make and total both run again for a parameter."""
    folder = tmp_path_factory.mktemp("why")
    nb = _tiny(folder)
    first = json.loads(_ok(run_cli("run", str(nb), "--json", cwd=folder)).stdout)
    second = json.loads(_ok(run_cli("run", str(nb), "-p", "n=4", "--json", cwd=folder)).stdout)
    return nb, first["id"], second["id"]


def test_dry_run_of_a_notebook_never_run_says_first_run_and_creates_no_store(tmp_path):
    nb = _tiny(tmp_path)
    plan = json.loads(_ok(run_cli("run", str(nb), "--dry-run", "--json", cwd=tmp_path)).stdout)
    assert [s["name"] for s in plan["stages"]] == ["make", "total"]
    assert all(s["action"] == "run" for s in plan["stages"])
    assert plan["stages"][0]["reason"]["kind"] == "first-run"
    assert not (tmp_path / ".nbops").exists(), "a dry run must not create a store"
    text = _ok(run_cli("run", str(nb), "--dry-run", cwd=tmp_path)).stdout
    assert "2 of 2 stages would run" in text and "first-run" in text


def test_dry_run_imports_neither_papermill_nor_pandas(tmp_path):
    nb = _tiny(tmp_path)
    code = (
        "import sys, io, contextlib\n"
        "from nbops.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    rc = main(['run', {str(nb)!r}, '--dry-run', '--json'])\n"
        "heavy = [m for m in ('papermill', 'pandas', 'nbclient', 'jupyter_client', 'pyarrow') if m in sys.modules]\n"
        "print(rc, heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.stdout.strip() == "0 []", proc.stdout + proc.stderr


def test_dry_run_after_a_run_names_the_changed_parameter(two_runs):
    nb, _, second = two_runs
    plan = json.loads(_ok(run_cli("run", str(nb), "-p", "n=5", "--dry-run", "--json", cwd=nb.parent)).stdout)
    make = plan["stages"][0]
    assert make["action"] == "run" and make["reason"]["kind"] == "params" and "n" in make["reason"]["detail"]
    same = json.loads(_ok(run_cli("run", str(nb), "-p", "n=4", "--dry-run", "--json", cwd=nb.parent)).stdout)
    assert [s["action"] for s in same["stages"]] == ["reuse", "reuse"]
    assert same["stages"][0]["reason"]["kind"] == "cached" and second in same["stages"][0]["reason"]["detail"]


def test_why_says_which_parameter_made_a_stage_run(two_runs):
    nb, first, second = two_runs
    text = _ok(run_cli("why", second, "--notebook", str(nb), cwd=nb.parent)).stdout
    assert "make" in text and "params" in text and "3 → 4" in text
    one = json.loads(_ok(run_cli("why", "latest", "make", "--notebook", str(nb), "--json", cwd=nb.parent)).stdout)
    assert one["run_id"] == second
    assert [s["name"] for s in one["stages"]] == ["make"]
    assert one["stages"][0]["reason"]["kind"] == "params"
    first_why = json.loads(_ok(run_cli("why", first, "--notebook", str(nb), "--json", cwd=nb.parent)).stdout)
    assert first_why["stages"][0]["reason"]["kind"] == "first-run"


def test_why_of_an_unknown_stage_is_an_error_naming_the_stages(two_runs):
    nb, _, second = two_runs
    proc = run_cli("why", second, "nosuch", "--notebook", str(nb), cwd=nb.parent)
    assert proc.returncode != 0
    assert "nosuch" in proc.stderr and "make" in proc.stderr


def test_runs_show_has_a_why_column(two_runs):
    nb, _, second = two_runs
    text = _ok(run_cli("runs", "show", second, "--notebook", str(nb), cwd=nb.parent)).stdout
    header = next(line for line in text.splitlines() if line.startswith("stage"))
    assert "why" in header.split()
    assert "params: n: 3 → 4" in text
    data = json.loads(_ok(run_cli("runs", "show", second, "--notebook", str(nb), "--json", cwd=nb.parent)).stdout)
    assert {s["name"]: s["reason"]["kind"] for s in data["stages"]}["make"] == "params"


def test_runs_diff_has_a_why_section(two_runs):
    nb, first, second = two_runs
    text = _ok(run_cli("runs", "diff", "latest~1", "latest", "--notebook", str(nb), cwd=nb.parent)).stdout
    assert f"{first} (succeeded) → {second} (succeeded)" in text
    assert "why" in text and "make" in text and "params" in text
    assert "n: 3 → 4" in text
    data = json.loads(_ok(run_cli("runs", "diff", first, second, "--notebook", str(nb), "--json", cwd=nb.parent)).stdout)
    assert any(r["stage"] == "make" and r["kind"] == "params" for r in data["reasons"])
    assert data["data"] == []


def test_rerun_says_identical_with_what_it_compared(two_runs):
    nb, _, second = two_runs
    proc = _ok(run_cli("rerun", second, "--notebook", str(nb), cwd=nb.parent))
    assert "identical: 1 output, 1 metric compared" in proc.stderr, proc.stderr
    assert "{'kind'" not in proc.stderr


def test_report_fetches_nothing_from_the_network(two_runs, tmp_path):
    pytest.importorskip("nbconvert")
    nb, _, second = two_runs
    out = tmp_path / "r.html"
    _ok(run_cli("report", second, "--notebook", str(nb), "-o", str(out), cwd=nb.parent))
    page = out.read_text()
    assert "<script src=" not in page, [line for line in page.splitlines() if "<script src=" in line][:3]
    assert "libs/mathjax" not in page.lower()  # nbconvert's default MathJax comes from cdnjs
    # (nbconvert's mermaid loader stays: it imports mermaid only when a cell has a diagram.)


def test_readme_params_file_exists_and_runs_dry():
    """The README's `nbops run churn.ipynb ... -f params.yaml` line runs as written from example_notebooks/."""
    readme = (ROOT / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("nbops run churn.ipynb") and "-f params.yaml" in x)
    args = line.split("#")[0].split()[1:]
    if "--dry-run" not in args:
        args.append("--dry-run")
    proc = _ok(run_cli(*args, "--json", cwd=ROOT / "example_notebooks"))
    assert [s["name"] for s in json.loads(proc.stdout)["stages"]] == ["load", "features", "train", "evaluate"]
