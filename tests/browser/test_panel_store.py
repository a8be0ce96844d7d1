"""The Pipeline panel over a team store (real PostgreSQL, set in nbops.toml beside the
notebook): the runs list names the store, password masked, and who ran each run."""

from __future__ import annotations

import socket

import pytest

from nbops.store import current_user
from tests.services import ADMIN_PASSWORD, postgres  # noqa: F401

pytestmark = pytest.mark.browser

RUN_TIMEOUT_MS = 180_000


def test_the_panel_shows_the_team_store_and_who_ran_each_run(screenshot, lab, lab_page, notebook_copy, postgres, tmp_path):  # noqa: F811
    rel = notebook_copy("small_pipeline.ipynb")
    url = postgres.new_database()
    (lab.root / rel).parent.joinpath("nbops.toml").write_text(f'store = "{url}"\nobjects = "{tmp_path / "objects"}"\n')
    lab_page.open_notebook(rel)
    panel = lab_page.open_panel()
    lab_page.wait_graph_ready()
    store = panel.get_by_role("note", name="Run store")
    store.wait_for()
    masked = url.replace(ADMIN_PASSWORD, "***")
    assert store.inner_text().startswith(f"store: team (postgresql) {masked} + ")
    assert "No runs yet." in panel.locator("section[aria-label='Runs']").inner_text()

    panel.get_by_role("button", name="Run pipeline").click()
    run = panel.locator(".nbops-Run").first
    run.wait_for(timeout=RUN_TIMEOUT_MS)
    run.locator("xpath=self::*[@data-status!='running']").wait_for(timeout=RUN_TIMEOUT_MS)
    assert run.get_attribute("data-status") == "succeeded"
    author = f"{current_user()}@{socket.gethostname()}"  # the lab runs as this test's user, on this machine
    assert run.locator(".nbops-RunAuthor").inner_text().strip() == f"· {author}"
    assert run.locator(".nbops-RunBy").inner_text() == f"run by {author}"
    assert store.inner_text().startswith(f"store: team (postgresql) {masked}")
    assert ADMIN_PASSWORD not in lab_page.page.content()
    screenshot(lab_page.page, "runs-team-store", panel.locator("section[aria-label='Runs']"))
