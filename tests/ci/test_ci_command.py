"""``nbops test`` (exit codes, JUnit XML, artifacts) and ``nbops report``, on real kernels.

Fixture: ``notebooks/ci.ipynb``: ``load`` (row_count and no_nulls checks) ->
``train`` (a logged metric, a warn-mode check that fails, a plotly figure;
raises when ``fail_stage``).
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

NB_DIR = Path(__file__).resolve().parent / "notebooks"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("ci")
    shutil.copy(NB_DIR / "ci.ipynb", dest / "ci.ipynb")
    return dest


def _cases(xml_path: Path) -> dict[tuple[str, str], ET.Element]:
    root = ET.parse(xml_path).getroot()
    assert root.tag == "testsuites"
    return {(tc.get("classname"), tc.get("name")): tc for tc in root.iter("testcase")}


@pytest.fixture(scope="module")
def passing(work, cli_module):
    """A passing run, kept in a store (for the report tests)."""
    junit = work / "out" / "report.xml"
    proc = cli_module("test", str(work / "ci.ipynb"), "--junit", str(junit), "--store", str(work / "store"), cwd=work)
    return proc, junit


@pytest.fixture(scope="module")
def cli_module():
    from tests.conftest import run_cli

    return run_cli


def test_pass_exits_0_with_a_testcase_per_stage_and_check(passing):
    proc, junit = passing
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cases = _cases(junit)
    assert set(cases) == {
        ("ci.load", "stage load"), ("ci.load", "row_count"), ("ci.load", "no_nulls"),
        ("ci.train", "stage train"), ("ci.train", "in_range[y]"),
    }  # fmt: skip
    assert not [tc for tc in cases.values() if tc.find("failure") is not None]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("name") == "ci" and suite.get("tests") == "5" and suite.get("failures") == "0"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["run_status"] == "succeeded" and props["param.n_rows"] == "50" and props["metric.score"] == "0.98"


def test_a_failing_warn_check_is_reported_but_does_not_fail(passing):
    proc, junit = passing
    tc = _cases(junit)[("ci.train", "in_range[y]")]
    assert tc.find("failure") is None
    assert tc.find("system-out").text.startswith("WARN check in_range[y] in stage train: observed")


def test_executed_notebooks_are_copied_and_referenced(passing):
    _, junit = passing
    art = junit.parent / "report-artifacts"
    tc = _cases(junit)[("ci.train", "stage train")]
    ref = {p.get("name"): p.get("value") for p in tc.find("properties")}["executed_notebook"]
    assert ref == "report-artifacts/train.ipynb"
    assert "[[ATTACHMENT|report-artifacts/train.ipynb]]" in tc.find("system-out").text
    executed = json.loads((junit.parent / ref).read_text())
    texts = json.dumps([c.get("outputs") for c in executed["cells"]])
    assert "SCORE-MARKER 0.98" in texts
    assert (art / "load.ipynb").exists()
    assert json.loads((art / "run.json").read_text())["status"] == "succeeded"


def test_failing_check_exits_1_and_names_stage_cell_and_observed(work, cli_module):
    junit = work / "check" / "r.xml"
    proc = cli_module("test", str(work / "ci.ipynb"), "-p", "min_rows=100", "--junit", str(junit), cwd=work)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    cases = _cases(junit)
    stage_fail = cases[("ci.load", "stage load")].find("failure")
    msg = stage_fail.get("message")
    assert stage_fail.get("type") == "CheckFailed"
    assert msg.startswith('stage load failed at cell 3 ("df = pd.DataFrame(')
    assert "observed 50, threshold" in msg and '"min": 100' in msg
    check_fail = cases[("ci.load", "row_count")].find("failure")
    assert check_fail.get("message") == 'check row_count failed in stage load: observed 50, threshold {"max": null, "min": 100}'
    skipped = cases[("ci.train", "stage train")].find("skipped")
    assert skipped is not None and "upstream stage load failed" in skipped.get("message")
    # A fresh temporary store, removed afterwards: nothing was written beside the notebook.
    props = {p.get("name"): p.get("value") for p in ET.parse(junit).getroot().find("testsuite/properties")}
    assert props["store"] == "(temporary, removed)"
    assert not (work / ".nbops").exists()


def test_failing_stage_exits_1_with_exception_and_cell(work, cli_module):
    junit = work / "stage" / "r.xml"
    art = work / "stage-artifacts"
    proc = cli_module("test", str(work / "ci.ipynb"), "-p", "fail_stage=true", "--junit", str(junit), "--artifacts", str(art), cwd=work)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    cases = _cases(junit)
    assert cases[("ci.load", "stage load")].find("failure") is None
    failure = cases[("ci.train", "stage train")].find("failure")
    assert failure.get("type") == "RuntimeError"
    assert failure.get("message") == 'stage train failed at cell 4 ("import plotly.graph_objects as go"): RuntimeError: training diverged'
    assert "training diverged" in failure.text  # the traceback
    assert (art / "train.ipynb").exists()  # the failed stage's executed notebook too


@pytest.mark.parametrize(
    "args",
    [["-p", "nope=1"], ["-p", "n_rows=many"], ["-f", "missing.yaml"]],
    ids=["unknown-param", "mistyped-param", "missing-params-file"],
)
def test_bad_input_exits_2(work, cli_module, args):
    proc = cli_module("test", str(work / "ci.ipynb"), *args, cwd=work)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "nbops: error:" in proc.stderr


def test_missing_notebook_exits_2(work, cli_module):
    proc = cli_module("test", str(work / "nothere.ipynb"), cwd=work)
    assert proc.returncode == 2 and "not found" in proc.stderr


def test_report_html_has_summary_outputs_and_a_drawn_plotly_figure(passing, work, cli_module):
    proc, junit = passing
    run_id = {p.get("name"): p.get("value") for p in ET.parse(junit).getroot().find("testsuite/properties")}["run_id"]
    out = work / "report.html"
    rep = cli_module("report", run_id, "--store", str(work / "store"), "-o", str(out), cwd=work)
    assert rep.returncode == 0, rep.stderr
    page = out.read_text()
    assert f"nbops run {run_id}" in page
    assert "SCORE-MARKER 0.98" in page  # a stage's output
    assert 'class="nbops-metrics"' in page and "<td>score</td><td>0.98</td>" in page
    assert 'class="nbops-checks"' in page and "<td>row_count</td>" in page and ">WARN<" in page
    assert 'id="stage-load"' in page and 'id="stage-train"' in page
    assert 'class="plotly-graph-div nbops-plotly"' in page and "Plotly.newPlot(" in page
    assert "label counts" in page  # the figure's data travelled with it
    assert "application/vnd.plotly.v1+json" not in page
    assert '<script src="https://cdn.plot.ly' not in page  # plotly.js is inlined: readable offline
    assert page.index("Plotly.newPlot(") > page.index("plotly.js v")  # defined before the figures draw
    latest = cli_module("report", "latest", "--store", str(work / "store"), "-o", str(work / "latest.html"), cwd=work)
    assert latest.returncode == 0 and f"nbops run {run_id}" in (work / "latest.html").read_text()


def test_report_of_an_unknown_run_is_bad_input(work, cli_module):
    proc = cli_module("report", "20200101-000000-abcdef", "--store", str(work / "store"), "-o", str(work / "x.html"), cwd=work)
    assert proc.returncode == 2 and "no run 20200101-000000-abcdef" in proc.stderr
