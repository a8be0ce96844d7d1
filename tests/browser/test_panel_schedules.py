"""The panel's Schedules section in a real lab: add an every-10-min schedule from the
form, see it listed with its next firings, pause and resume it, run it now and see the
run in its last runs (a link opens it in the Runs section), a refused cron naming its
field, and remove it.

No scheduler runs beside this lab: "run now" queues the firing and the server runs it
in a thread of its own (nbops/server/schedules_routes.py), on a real kernel.
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser


def test_add_pause_resume_run_now_and_remove_a_schedule(screenshot, lab_page, notebook_copy, lab):
    rel = notebook_copy("small_pipeline.ipynb")
    page = lab_page.page
    lab_page.open_notebook(rel)
    panel = lab_page.open_panel()
    lab_page.wait_graph_ready()
    section = panel.locator("section[aria-label='Schedules']")
    section.locator(".nbops-Empty", has_text="No schedules").wait_for()
    # Between Models and Features.
    labels = [s.get_attribute("aria-label") for s in panel.locator("section.nbops-Section").all()]
    assert labels.index("Models") < labels.index("Schedules") < labels.index("Features"), labels

    # A cron with a bad hour: the server's message names the field, nothing is added.
    section.get_by_role("button", name="Add schedule…").click()
    form = section.get_by_role("form", name="Add a schedule")
    form.get_by_label("Trigger").select_option("cron")
    form.get_by_label("Cron").fill("0 25 * * *")
    form.get_by_label("Time zone").fill("Europe/Berlin")
    form.get_by_role("button", name="Add schedule").click()
    alert = section.get_by_role("alert")
    alert.wait_for()
    assert "Could not add the schedule" in alert.inner_text() and "hour" in alert.inner_text(), alert.inner_text()
    assert section.locator(".nbops-Schedule").count() == 0
    screenshot(page, "schedules-form-refused", section)

    # Every 10 minutes, with a parameter.
    form.get_by_label("Trigger").select_option("every")
    form.get_by_label("Every").fill("10m")
    form.get_by_label("Name").fill("tenmin")
    form.get_by_label("Parameters").fill("n_rows=50")
    form.get_by_role("button", name="Add schedule").click()
    item = section.locator(".nbops-Schedule[data-schedule='tenmin']")
    item.wait_for()
    section.get_by_role("status").filter(has_text="Added tenmin: every 10 min.").wait_for()
    assert form.count() == 0  # the form closes once added
    assert item.locator(".nbops-ScheduleTrigger").inner_text() == "every 10 min"
    assert item.get_attribute("data-paused") == "false"
    assert re.match(r"next: \w{3} \d+ \d\d:\d\d", item.locator(".nbops-ScheduleNext").inner_text())
    nexts = item.get_by_role("list", name="Next firings of tenmin").locator("li")
    nexts.first.wait_for()
    assert nexts.count() == 5
    assert "parameters: n_rows=50" in item.inner_text()
    assert item.locator(".nbops-Firing").count() == 0 and "not fired yet" in item.inner_text()
    screenshot(page, "schedules-added", section)

    # Pause: a badge, no next firings; resume: back.
    item.get_by_role("button", name="Pause").click()
    item.locator("xpath=self::*[@data-paused='true']").wait_for()
    item.locator(".nbops-ScheduleBadge[data-badge='paused']").wait_for()
    assert "none while paused" in item.inner_text() and item.locator(".nbops-ScheduleNext").count() == 0
    item.get_by_role("button", name="Resume").click()
    item.locator("xpath=self::*[@data-paused='false']").wait_for()
    assert item.locator(".nbops-ScheduleBadge").count() == 0
    nexts.first.wait_for()

    # Run now: the firing shows at once (queued or already running), then its run.
    item.get_by_role("button", name="Run now").click()
    firing = item.locator(".nbops-Firing").first
    firing.wait_for()
    assert firing.get_attribute("data-key").startswith("manual:")
    assert firing.get_attribute("data-status") in ("queued", "running", "succeeded")
    assert "run now" in firing.locator(".nbops-FiringTrigger").inner_text()
    item.locator(".nbops-Firing[data-status='succeeded']").wait_for(timeout=120_000)
    run_id = firing.get_attribute("data-run-id")
    assert run_id
    screenshot(page, "schedules-ran", section)
    # The link opens that run in the Runs section (run with the schedule's parameters).
    firing.get_by_role("button", name=run_id).click()
    run = panel.locator(f"section[aria-label='Runs'] .nbops-Run[data-run-id='{run_id}']")
    run.wait_for()
    run.locator(".nbops-RunDetail").wait_for()
    assert run.get_attribute("data-status") == "succeeded"
    assert lab.api(f"nbops/runs/{run_id}?path={rel}")["params"]["n_rows"] == 50

    # Remove: asked first; then gone.
    item.get_by_role("button", name="Remove").click()
    dialog = page.locator(".jp-Dialog")
    dialog.get_by_role("button", name="Remove").click()
    dialog.wait_for(state="detached")
    item.wait_for(state="detached")
    section.get_by_role("status").filter(has_text="Removed tenmin.").wait_for()
    section.locator(".nbops-Empty", has_text="No schedules").wait_for()
    assert lab.api(f"nbops/schedules?path={rel}")["schedules"] == []


def test_a_data_trigger_its_firing_events_and_a_broken_schedule(lab_page, notebook_copy, lab, screenshot):
    """What a scheduler records, as the panel shows it: the file that changed with its new hash,
    a notification event with its masked target, and a schedule marked broken with the reason."""
    from nbops.automate import schedules

    rel = notebook_copy("small_pipeline.ipynb")
    nb = lab.root / rel
    (nb.parent / "data").mkdir()
    (nb.parent / "data" / "a.csv").write_text("x\n1\n")
    added = schedules.add(
        nb, {"kind": "on_change", "watch": ["data/*.csv"], "debounce": 1.0}, name="fresh-data", notify=["https://user:pw@hooks.example.com/x"]
    )
    assert added["warnings"] == []
    schedules.add(nb, {"kind": "every", "seconds": 3600}, name="hourly")
    # As the scheduler records them (nbops.store.schedules is what it writes through).
    ss = schedules.open_schedules(near=nb)
    change = {"kind": "on_change", "files": [{"path": "data/a.csv", "hash": "1a2b3c4d5e6f7a8b", "old": "99aa"}]}
    ss.add_firing("fresh-data", "change:1a2b3c4d", 1_764_558_000.0, trigger=change)
    ss.set_firing("fresh-data", "change:1a2b3c4d", status="failed", reason="stage load failed: ValueError", ended_at=1_764_558_009.0)
    ss.add_event("fresh-data", "notify", "sent", key="change:1a2b3c4d", target="https://hooks.example.com/***", message="failure")
    ss.update("hourly", broken="notebook moved or deleted")

    lab_page.open_notebook(rel)
    panel = lab_page.open_panel()
    section = panel.locator("section[aria-label='Schedules']")
    fresh = section.locator(".nbops-Schedule[data-schedule='fresh-data']")
    fresh.wait_for()
    assert fresh.locator(".nbops-ScheduleTrigger").inner_text() == "when data/*.csv changes"
    assert fresh.locator(".nbops-ScheduleNext").count() == 0  # no due times for a data trigger
    hourly = section.locator(".nbops-Schedule[data-schedule='hourly']")
    assert hourly.get_attribute("data-broken") == "true"
    assert hourly.locator(".nbops-ScheduleBadge[data-badge='broken']").get_attribute("title") == "notebook moved or deleted"
    assert "notebook moved or deleted" in hourly.inner_text()
    assert hourly.locator(".nbops-ScheduleTrigger").inner_text() == "every hour"

    fresh.locator(".nbops-RunHeader").click()
    firing = fresh.locator(".nbops-Firing[data-key='change:1a2b3c4d']")
    firing.wait_for()
    assert firing.get_attribute("data-status") == "failed"
    assert "data/a.csv changed (hash 1a2b3c4d)" in firing.inner_text()
    assert "stage load failed: ValueError" in firing.inner_text()
    event = fresh.locator(".nbops-ScheduleEvent[data-kind='notify']")
    assert "notify sent" in event.inner_text() and "https://hooks.example.com/***" in event.inner_text()
    notify = fresh.locator(".nbops-ScheduleNotify").inner_text()
    assert "hooks.example.com" in notify and "pw" not in notify and "on failure, promotion, regression" in notify
    assert "none planned: fires when data/*.csv changes" in fresh.inner_text()
    screenshot(lab_page.page, "schedules-data-trigger", section)
