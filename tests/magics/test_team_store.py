"""The magics over a team store (real PostgreSQL): a run says who ran it and where it is, password masked."""

from __future__ import annotations

import socket

from tests.services import ADMIN_PASSWORD, postgres  # noqa: F401


def test_run_runs_and_show_name_the_store_and_the_user(ip, demo, postgres, tmp_path, monkeypatch):  # noqa: F811
    url = postgres.new_database()
    monkeypatch.setenv("NBOPS_USER", "carol")
    monkeypatch.setenv("NBOPS_OBJECTS", str(tmp_path / "objects"))
    where = f"--notebook {demo} --store {url}"
    ip.run_line_magic("nbops", f"run {where}")  # prints its final view (no kernel display here)
    shown = [repr(ip.run_line_magic("nbops", f"show {where}")), repr(ip.run_line_magic("nbops", f"runs {where}"))]
    author = f"carol@{socket.gethostname()}"
    masked = url.replace(ADMIN_PASSWORD, "***")
    assert f"by        {author}" in shown[0] and f"store     {masked}" in shown[0], shown[0]
    assert f"store {masked}" in shown[1] and author in shown[1], shown[1]
    assert all(ADMIN_PASSWORD not in text for text in shown)
