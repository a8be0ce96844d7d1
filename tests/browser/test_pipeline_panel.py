"""The Pipeline panel in a real JupyterLab + Chromium: tag, see the DAG, run, open."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.browser

RUN_TIMEOUT_MS = 180_000


def _tags_on_disk(lab, rel: str) -> list[list[str]]:
    nb = json.loads((lab.root / rel).read_text())
    return [c["metadata"].get("tags", []) for c in nb["cells"]]


def _new_stage(lab_page, panel, cell: int, name: str) -> None:
    lab_page.select_cell(cell)
    panel.get_by_role("combobox", name="Stage").select_option(label="New stage…")
    box = panel.get_by_role("textbox", name="New stage name")
    box.fill(name)
    box.press("Enter")
    lab_page.page.wait_for_function(
        "([i, name]) => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')[i].dataset.nbopsStage === name",
        arg=[cell, name],
    )


def test_tag_cells_into_stages_through_the_panel(screenshot, lab, lab_page, notebook_copy):
    rel = notebook_copy("small_pipeline.ipynb", strip_stages=True)
    assert not any(t.startswith("stage:") for tags in _tags_on_disk(lab, rel) for t in tags)
    lab_page.open_notebook(rel)
    panel = lab_page.open_panel()
    lab_page.wait_graph_ready()

    _new_stage(lab_page, panel, 3, "load")
    _new_stage(lab_page, panel, 5, "features")
    panel.get_by_role("checkbox", name="cache:off").check()
    _new_stage(lab_page, panel, 6, "evaluate")
    lab_page.wait_graph_ready()
    panel.get_by_role("checkbox", name="after load").check()
    retries = panel.get_by_role("textbox", name="retries", exact=True)
    retries.fill("2")
    retries.press("Enter")
    # An invalid value is refused with a message and never written.
    gpus = panel.get_by_role("textbox", name="gpus", exact=True)
    gpus.fill("1.5")
    gpus.press("Enter")
    assert "whole number" in panel.get_by_role("alert").inner_text()

    lab_page.wait_graph_ready()
    assert panel.locator(".nbops-CellSummary").inner_text().endswith("starts stage evaluate")
    assert [panel.locator(".nbops-Stage").nth(i).get_attribute("data-stage") for i in range(3)] == [
        "load",
        "features",
        "evaluate",
    ]
    # The band of a cell follows its stage, also for untagged cells after a stage tag.
    assert lab_page.cell(4).get_attribute("data-nbops-stage") == "load"
    assert lab_page.cell(7).get_attribute("data-nbops-label") == "evaluate · metrics"
    screenshot(lab_page.page, "tagged-through-panel")

    lab_page.save()
    tags = _tags_on_disk(lab, rel)
    assert tags[1] == ["setup"]
    assert tags[2] == ["parameters"]
    assert tags[3] == ["stage:load"]
    assert tags[4] == []
    assert tags[5] == ["stage:features", "cache:off"]
    assert tags[6] == ["stage:evaluate", "after:load", "retries:2"]
    assert tags[7] == ["metrics"]


def test_the_dag_shows_edges_with_their_variables(screenshot, lab_page, notebook_copy):
    lab_page.open_notebook(notebook_copy("small_pipeline.ipynb"))
    panel = lab_page.open_panel()
    lab_page.wait_graph_ready()
    dag = panel.locator("svg.nbops-Dag")
    assert dag.locator(".nbops-DagNode").count() == 3
    label = dag.locator(".nbops-DagLabel[data-source='load'][data-target='features']")
    assert label.text_content() == "df"
    label = dag.locator(".nbops-DagLabel[data-source='features'][data-target='evaluate']")
    assert label.text_content() == "features"
    assert dag.locator(".nbops-DagEdge").count() == 2
    screenshot(lab_page.page, "dag", panel)


def test_graph_errors_show_next_to_the_cell_they_name(screenshot, lab_page, notebook_copy):
    def bad_after(nb):
        nb["cells"][5]["metadata"]["tags"] = ["stage:features", "after:nowhere"]

    lab_page.open_notebook(notebook_copy("small_pipeline.ipynb", edit=bad_after))
    panel = lab_page.open_panel()
    lab_page.wait_graph_ready()
    # The band is drawn again when the plan arrives: wait for the note rather than read it once.
    note = lab_page.cell(5).locator(".nbops-CellIssue", has_text="nowhere")
    note.wait_for(timeout=15_000)
    issue = panel.locator(".nbops-Issue.nbops-mod-error")
    assert issue.get_attribute("data-cell") == "5"
    assert panel.get_by_role("button", name="Run pipeline").is_disabled()
    screenshot(lab_page.page, "graph-error")

    # Fixing the tag in the panel clears the error without saving.
    lab_page.select_cell(5)
    panel.get_by_role("checkbox", name="after nowhere").click()  # the box goes with the tag
    lab_page.wait_graph_ready()
    assert lab_page.cell(5).locator(".nbops-CellIssue").count() == 0
    assert panel.get_by_role("button", name="Run pipeline").is_enabled()


def test_run_the_pipeline_from_the_panel_and_open_an_executed_notebook(screenshot, lab_page, notebook_copy):
    lab_page.open_notebook(notebook_copy("small_pipeline.ipynb"))
    panel = lab_page.open_panel()
    lab_page.wait_graph_ready()
    panel.get_by_role("textbox", name="parameter n_rows").fill("70")
    panel.get_by_role("button", name="Run pipeline").click()

    run = panel.locator(".nbops-Run").first
    run.locator("xpath=self::*[@data-status!='running']").wait_for(timeout=RUN_TIMEOUT_MS)
    assert run.get_attribute("data-status") == "succeeded", run.inner_text()
    stages = run.locator(".nbops-StageRun")
    assert stages.count() == 3
    assert [stages.nth(i).get_attribute("data-status") for i in range(3)] == ["succeeded"] * 3
    assert run.locator("[data-metric='rows']").inner_text() == "rows 70"
    assert run.locator("[data-metric='positive_rate']").is_visible()
    assert "n_rows=70" in run.inner_text()
    screenshot(lab_page.page, "run-succeeded")

    run.get_by_role("button", name="Open executed notebook evaluate").click()
    view = lab_page.page.locator(".nbops-ExecutedNotebookView")
    view.locator(".jp-Cell").first.wait_for()
    assert "read-only" in view.inner_text()
    assert "positive_rate" in view.inner_text()
    assert view.locator(".jp-OutputArea-output").count() > 0
    screenshot(lab_page.page, "executed-notebook")


def _choose_theme(page, name: str) -> None:
    page.get_by_role("menuitem", name="Settings", exact=True).click()
    page.locator('.lm-Menu-itemLabel:text-is("Theme")').click()
    page.locator(f'.lm-Menu-itemLabel:text-is("{name}")').click()


def test_the_panel_in_the_dark_theme(screenshot, lab_page, notebook_copy):
    page = lab_page.page
    lab_page.open_notebook(notebook_copy("small_pipeline.ipynb"))
    panel = lab_page.open_panel()
    lab_page.wait_graph_ready()
    _choose_theme(page, "JupyterLab Dark")
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
    page.wait_for_timeout(500)
    # Text in the panel stays readable: its colour differs clearly from the background.
    contrast = panel.evaluate(
        """el => {
          const lum = c => { const [r, g, b] = c.match(/\\d+/g).map(Number); return (r * 299 + g * 587 + b * 114) / 1000; };
          const s = getComputedStyle(el);
          return Math.abs(lum(s.color) - lum(s.backgroundColor));
        }"""
    )
    assert contrast > 100
    screenshot(page, "dark-theme")
    _choose_theme(page, "JupyterLab Light")


def test_palette_commands_assign_a_stage_and_show_the_runs(lab, lab_page, notebook_copy):
    page = lab_page.page
    rel = notebook_copy("small_pipeline.ipynb", strip_stages=True)
    lab_page.open_notebook(rel)
    lab_page.open_panel()
    lab_page.wait_graph_ready()
    lab_page.select_cell(3)
    lab_page.palette("nbops: Assign the selected cells")
    dialog = page.get_by_role("dialog")
    dialog.locator("input").fill("prepare")
    dialog.get_by_role("button", name="Ok").click()
    page.wait_for_function("() => document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell')[3].dataset.nbopsStage === 'prepare'")
    lab_page.save()
    assert json.loads((lab.root / rel).read_text())["cells"][3]["metadata"]["tags"] == ["stage:prepare"]

    lab_page.palette("nbops: Show the runs")
    assert page.locator("#nbops-pipeline section[aria-label='Runs']").is_visible()


def test_runs_are_listed_newest_first_and_a_rerun_reuses_the_cache(screenshot, lab_page, notebook_copy):
    lab_page.open_notebook(notebook_copy("small_pipeline.ipynb"))
    panel = lab_page.open_panel()
    lab_page.wait_graph_ready()
    run_button = panel.get_by_role("button", name="Run pipeline")
    runs = panel.locator(".nbops-Run")
    ids = []
    for n in (1, 2):
        run_button.click()
        lab_page.page.wait_for_function("n => document.querySelectorAll('#nbops-pipeline .nbops-Run').length === n", arg=n, timeout=RUN_TIMEOUT_MS)
        runs.first.locator("xpath=self::*[@data-status!='running']").wait_for(timeout=RUN_TIMEOUT_MS)
        assert runs.first.get_attribute("data-status") == "succeeded"
        ids.append(runs.first.get_attribute("data-run-id"))
    assert ids[0] != ids[1]
    assert [runs.nth(i).get_attribute("data-run-id") for i in range(2)] == [ids[1], ids[0]]
    stages = runs.first.locator(".nbops-StageRun")
    assert {stages.nth(i).get_attribute("data-status") for i in range(3)} == {"cached"}
    # The older run is collapsed to one dot per stage.
    assert runs.nth(1).locator(".nbops-StageDot").count() == 3
    screenshot(lab_page.page, "runs-list", panel.locator("section[aria-label='Runs']"))
