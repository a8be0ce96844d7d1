"""Why each stage runs, in the lab: stale bands after an edit, reasons in the run view."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

RUN_TIMEOUT_MS = 180_000
LOAD, FEATURES, EVALUATE = 3, 5, 6  # first cell of each stage in small_pipeline.ipynb
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def _run_from_panel(lab_page, panel, n: int):
    panel.get_by_role("button", name="Run pipeline").click()
    lab_page.page.wait_for_function("n => document.querySelectorAll('#nbops-pipeline .nbops-Run').length === n", arg=n, timeout=RUN_TIMEOUT_MS)
    run = panel.locator(".nbops-Run").first
    run.locator("xpath=self::*[@data-status!='running']").wait_for(timeout=RUN_TIMEOUT_MS)
    assert run.get_attribute("data-status") == "succeeded", run.inner_text()
    return run


def _wait_mark(lab_page, cell: int, mark: str) -> None:
    lab_page.page.wait_for_function(
        "([i, mark]) => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')[i].dataset.nbopsMark === mark",
        arg=[cell, mark],
        timeout=30_000,
    )


def test_an_edit_marks_its_stage_and_those_downstream_stale_and_the_run_says_why(screenshot, lab, lab_page, notebook_copy):
    rel = notebook_copy("small_pipeline.ipynb")
    page = lab_page.page
    lab_page.open_notebook(rel)
    panel = lab_page.open_panel()
    lab_page.wait_graph_ready()
    # Nothing is stale before the first run.
    assert lab_page.cell(LOAD).locator(".nbops-StageMark").count() == 0

    _run_from_panel(lab_page, panel, 1)
    for cell in (LOAD, FEATURES, EVALUATE):
        _wait_mark(lab_page, cell, "succeeded")
    chip = lab_page.cell(LOAD).locator(".nbops-StageMark")
    assert chip.inner_text().startswith("✓ succeeded")
    assert "succeeded at" in chip.get_attribute("title")

    # Change the code of the middle stage and save: it and the stage after it go stale.
    lab_page.select_cell(FEATURES)
    page.keyboard.press("Enter")  # edit mode
    page.keyboard.press("Control+End")
    page.keyboard.press("Enter")
    page.keyboard.type("features = features.assign(w=1)")
    page.keyboard.press("Escape")
    lab_page.save()
    source = json.loads((lab.root / rel).read_text())["cells"][FEATURES]["source"]
    assert "features.assign(w=1)" in "".join(source)

    _wait_mark(lab_page, FEATURES, "stale")
    _wait_mark(lab_page, EVALUATE, "stale")
    assert lab_page.cell(LOAD).get_attribute("data-nbops-mark") == "succeeded"
    stale = lab_page.cell(FEATURES).locator(".nbops-StageMark")
    assert stale.inner_text() == "stale · code changed"
    assert "changed" in stale.get_attribute("title")
    assert lab_page.cell(EVALUATE).locator(".nbops-StageMark").inner_text() == "stale · upstream changed"
    assert panel.locator(".nbops-Stage[data-stage='features'] .nbops-Stale").get_attribute("data-reason") == "code"
    assert panel.locator(".nbops-Stage[data-stage='load'] .nbops-Stale").count() == 0
    lab_page.cell(FEATURES).scroll_into_view_if_needed()
    path = screenshot(page, "panel-stale")
    shutil.copy(path, DOCS_IMG / "panel-stale.png")

    # Run again: only the stale stages run, and the run view says why for each stage.
    run = _run_from_panel(lab_page, panel, 2)
    stages = run.locator(".nbops-StageRun")
    assert [stages.nth(i).get_attribute("data-status") for i in range(3)] == ["cached", "succeeded", "succeeded"]
    reasons = [stages.nth(i).locator(".nbops-Reason").get_attribute("data-reason") for i in range(3)]
    assert reasons == ["cached", "code", "upstream"]
    assert "cell 5" in stages.nth(1).locator(".nbops-Reason").inner_text()
    for cell, mark in ((LOAD, "cached"), (FEATURES, "succeeded"), (EVALUATE, "succeeded")):
        _wait_mark(lab_page, cell, mark)
    screenshot(page, "panel-reasons", panel.locator("section[aria-label='Runs']"))


def test_a_failed_stage_names_the_cell_of_the_users_notebook(lab_page, notebook_copy):
    def failing_evaluate(nb):
        nb["cells"][EVALUATE]["source"] = "positive_rate = 1 / 0\nrows = len(features)"

    lab_page.open_notebook(notebook_copy("small_pipeline.ipynb", edit=failing_evaluate))
    panel = lab_page.open_panel()
    lab_page.wait_graph_ready()
    panel.get_by_role("button", name="Run pipeline").click()
    run = panel.locator(".nbops-Run").first
    run.wait_for(timeout=RUN_TIMEOUT_MS)
    run.locator("xpath=self::*[@data-status!='running']").wait_for(timeout=RUN_TIMEOUT_MS)
    assert run.get_attribute("data-status") == "failed"
    error = run.locator(".nbops-StageRun[data-stage='evaluate'] .nbops-Issue")
    assert "ZeroDivisionError" in error.inner_text()
    # The cell of the notebook the user edits, not of the generated stage notebook.
    assert error.get_attribute("data-cell") == str(EVALUATE)
    goto = error.get_by_role("button", name=f"cell {EVALUATE} (positive_rate = 1 / 0)")
    lab_page.select_cell(0)
    goto.click()
    lab_page.page.wait_for_function(
        "i => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')[i].classList.contains('jp-mod-active')",
        arg=EVALUATE,
    )
    _wait_mark(lab_page, EVALUATE, "failed")


def test_a_stage_lists_the_data_it_read_and_goes_stale_when_that_file_changes(lab, lab_page, notebook_copy):
    rel = notebook_copy("reads_data.ipynb")
    data = lab.root / Path(rel).parent / "reads_data.csv"
    data.write_text("x\n1\n2\n3\n")
    lab_page.open_notebook(rel)
    panel = lab_page.open_panel()
    lab_page.wait_graph_ready()
    run = _run_from_panel(lab_page, panel, 1)
    read = run.locator(".nbops-StageRun[data-stage='load'] .nbops-DataInput")
    assert read.inner_text().startswith("reads reads_data.csv ")
    _wait_mark(lab_page, 0, "succeeded")

    data.write_text("x\n1\n2\n30\n")  # changed outside the editor: the panel re-checks the plan by itself
    _wait_mark(lab_page, 0, "stale")
    assert "reads_data.csv" in lab_page.cell(0).locator(".nbops-StageMark").get_attribute("title")
    assert lab_page.cell(1).get_attribute("data-nbops-mark") == "stale"  # downstream of the read
