"""The panel's Features section in a real lab: tables, versions and the freshness of
their online copies, before and after a materialization.

Tables are published beside the notebook through the library (outside a run, as
a notebook cell would) and materialized into the embedded online store.
"""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.browser


def _frame(days: int, extra: bool = False) -> pd.DataFrame:
    times = ["2026-11-01", "2026-11-01", "2026-11-02", "2026-11-02"][: 2 * days]
    df = pd.DataFrame({"customer_id": [1, 2, 1, 2][: 2 * days], "event_time": pd.to_datetime(times, utc=True), "spend": [10.0, 20.0, 11.0, 21.0][: 2 * days]})
    return df.assign(visits=[1, 2, 3, 4][: 2 * days]) if extra else df


def test_tables_versions_and_freshness(screenshot, lab, lab_page, notebook_copy, monkeypatch):
    from nbops import features

    monkeypatch.delenv("NBOPS_ONLINE", raising=False)
    rel = notebook_copy("tiny_model.ipynb")
    near = lab.root / rel
    features.publish(_frame(1), "customer_stats", entity="customer_id", timestamp="event_time", description="spend per customer and day", near=near)
    features.materialize("customer_stats", near=near)
    features.publish(_frame(2, extra=True), "customer_stats", entity="customer_id", timestamp="event_time", near=near)
    features.publish(_frame(2), "orders", entity="customer_id", timestamp="event_time", near=near)

    lab_page.open_notebook(rel)
    panel = lab_page.open_panel()
    section = panel.locator("section[aria-label='Features']")
    stats = section.locator(".nbops-FeatureTable[data-table='customer_stats']")
    chip = stats.locator(".nbops-Freshness")
    chip.wait_for()
    assert (chip.get_attribute("data-status"), chip.inner_text()) == ("behind", "1 version behind")
    assert "v2" in stats.locator(".nbops-RunHeader").inner_text()
    assert "by customer_id at event_time" in stats.inner_text()
    orders = section.locator(".nbops-FeatureTable[data-table='orders'] .nbops-Freshness")
    assert (orders.get_attribute("data-status"), orders.inner_text()) == ("never", "not materialized")

    stats.locator(".nbops-RunHeader").click()
    versions = stats.locator(".nbops-FeatureVersion")
    versions.first.wait_for()
    assert [versions.nth(i).get_attribute("data-version") for i in range(versions.count())] == ["2", "1"]
    v2 = versions.first.inner_text()
    assert "4 rows · 2 entities" in v2 and "2026-11-01 → 2026-11-02" in v2 and "4 columns: customer_id, event_time, spend, visits" in v2
    assert "published outside a run" in v2
    assert "spend per customer and day" in stats.inner_text()
    fresh = stats.get_by_label("Freshness of customer_stats")
    assert fresh.locator("dd[data-field='lag']").inner_text() == "newest feature time 1 d behind the offline table"
    assert fresh.locator("dd[data-field='online']").inner_text() == "v1 in online.db"
    assert "ago" in fresh.locator("dd[data-field='last materialized']").inner_text()
    screenshot(lab_page.page, "features-behind", section)

    # Materialized again (by a notebook or `nbops features materialize`): fresh after a refresh.
    features.materialize("customer_stats", near=near)
    section.get_by_role("button", name="Refresh").click()
    stats.locator(".nbops-Freshness[data-status='fresh']").wait_for()
    assert chip.inner_text() == "fresh"
    assert fresh.locator("dd[data-field='lag']").inner_text() == "none"
    assert fresh.locator("dd[data-field='online']").inner_text() == "v2 in online.db"
    screenshot(lab_page.page, "features-fresh", section)
