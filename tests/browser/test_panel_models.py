"""The panel's Models section in a real lab: register a run's output from the run view,
promote it behind a gate, roll back, and see a failing gate's message.

tiny_model.ipynb runs twice before the page opens (``first_col=1``: a poor model,
then ``first_col=0``: a good one); the poor one is v1 @production, registered
through the library as a team-mate would have done.
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser


@pytest.fixture
def two_runs(lab, notebook_copy):
    from nbops import api, models

    rel = notebook_copy("tiny_model.ipynb")
    nb = lab.root / rel
    worse = api.run(nb, {"first_col": 1})
    better = api.run(nb, {"first_col": 0})
    assert worse["status"] == better["status"] == "succeeded"
    models.register(worse["id"], "train", "model", "tiny", near=nb)
    models.promote("tiny", 1, "production", message="baseline", near=nb)
    return rel, worse, better


def _dialog(page, button: str, text: str | None = None) -> None:
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for()
    if text is not None:
        dialog.locator("input").fill(text)
    dialog.get_by_role("button", name=button).click()
    dialog.wait_for(state="detached")


def test_register_promote_rollback_and_a_failing_gate(screenshot, lab_page, two_runs):
    rel, worse, better = two_runs
    page = lab_page.page
    lab_page.open_notebook(rel)
    panel = lab_page.open_panel()
    lab_page.wait_graph_ready()
    section = panel.locator("section[aria-label='Models']")
    tiny = section.locator(".nbops-Model[data-model='tiny']")
    tiny.locator(".nbops-AliasChip[data-alias='production']", has_text="production v1").wait_for()

    # "Register as model" on the newest run's train.model: the name defaults to the one model there is.
    run = panel.locator(f".nbops-Run[data-run-id='{better['id']}']")
    run.get_by_role("button", name="Register train.model as model").click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for()
    assert dialog.locator("input").input_value() == "tiny"
    _dialog(page, "Register")
    notice = section.get_by_role("status")
    notice.filter(has_text=f"Registered tiny v2 from run {better['id']} (train.model).").wait_for()
    versions = tiny.locator(".nbops-ModelVersion")
    versions.first.wait_for()
    assert [versions.nth(i).get_attribute("data-version") for i in range(versions.count())] == ["2", "1"]
    v2 = tiny.locator(".nbops-ModelVersion[data-version='2']")
    assert f"accuracy {better['metrics']['accuracy']:.4g}" in v2.locator(".nbops-Metrics").inner_text()
    assert f"from run {better['id']} · train.model" in v2.inner_text()

    # Promote v2 to production, gated on beating the version there now.
    form = tiny.get_by_role("form", name="Promote tiny")
    assert form.get_by_label("Version").input_value() == "2"
    form.get_by_label("Better than").fill("production")
    form.get_by_label("Why").fill("uses the informative column")
    form.get_by_role("button", name="Promote").click()
    production = tiny.locator(".nbops-Alias[data-alias='production']")
    production.locator("xpath=self::*[@data-version='2']").wait_for()
    assert re.search(r"Promoted tiny v2 to production \(v1 → v2\); gates: accuracy better than production ✓", notice.inner_text())
    history = tiny.locator(".nbops-HistoryEvent")
    assert history.count() == 2
    newest = history.first
    assert (newest.get_attribute("data-action"), newest.get_attribute("data-to")) == ("promote", "2")
    assert "production v1 → v2" in newest.inner_text() and "uses the informative column" in newest.inner_text()
    assert tiny.locator(".nbops-RunHeader .nbops-AliasChip").inner_text() == "production v2"
    screenshot(page, "models-promoted", section)

    # Roll back: production is v1 again, and the history says so (with why).
    tiny.get_by_role("button", name="Roll back production").click()
    _dialog(page, "Roll back", "v2 misbehaves")
    production.locator("xpath=self::*[@data-version='1']").wait_for()
    notice.filter(has_text="Rolled tiny@production back (v2 → v1).").wait_for()
    assert history.count() == 3
    assert history.first.get_attribute("data-action") == "rollback"
    assert "production v2 → v1" in history.first.inner_text() and "v2 misbehaves" in history.first.inner_text()
    assert [history.nth(i).get_attribute("data-to") for i in range(3)] == ["1", "2", "1"]

    # A gate that fails: refused with the condition and the value, and nothing moves.
    form.get_by_label("Version").select_option("1")
    form.get_by_label("Better than").fill("")
    form.get_by_label("Require").fill("accuracy>=0.99")
    form.get_by_role("button", name="Promote").click()
    alert = section.get_by_role("alert")
    alert.wait_for()
    text = alert.inner_text()
    assert "Could not promote tiny v1 to production: promotion refused: accuracy>=0.99 failed" in text
    assert "accuracy>=0.99" in text and str(worse["metrics"]["accuracy"]) in text, text
    assert production.get_attribute("data-version") == "1"
    assert history.count() == 3
    screenshot(page, "models-gate-refused", section)


def test_a_data_output_is_not_offered_and_a_store_without_models_says_how(lab_page, notebook_copy, lab):
    from nbops import api

    rel = notebook_copy("tiny_model.ipynb")
    api.run(lab.root / rel, {})
    run = api.run(lab.root / rel, {})  # every stage reused from the cache: its outputs are the first run's
    assert {s["status"] for s in run["stages"]} == {"cached"}
    lab_page.open_notebook(rel)
    panel = lab_page.open_panel()
    section = panel.locator("section[aria-label='Models']")
    section.locator(".nbops-Empty", has_text="No models yet").wait_for()
    detail = panel.locator(f".nbops-Run[data-run-id='{run['id']}'] .nbops-StageRuns")
    detail.wait_for()
    # X and y (numpy) are data; only train's model is offered (cached: reused outputs register too).
    assert [b.get_attribute("aria-label") for b in detail.locator(".nbops-StageOutput button").all()] == ["Register train.model as model"]
