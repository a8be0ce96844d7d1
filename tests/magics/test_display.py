"""The views: both mimetypes, escaped HTML, the failed stage's cell and error."""

from __future__ import annotations

from nbops.magics.display import RunProgressView, RunsView, RunView, text_table


def stage(name, status, **extra):
    return {"name": name, "status": status, "duration_s": 1.25, "metrics": {}, "outputs": {}, "checks": [],
            "cached_from": None, "error": None, **extra}  # fmt: skip


FAILED_RUN = {
    "id": "20261130-013000-ab12cd", "status": "failed", "kind": "run", "parent_id": None, "duration_s": 4.2,
    "notebook": "/nb/<demo>.ipynb", "params": {"lr": 0.001}, "metrics": {"loss": 0.123456},
    "stages": [
        stage("load", "cached", cached_from="20261129-000000-aaaaaa", outputs={"df": {}}),
        stage("train", "failed", error={"ename": "ValueError", "evalue": "bad <input> & more", "cell": 4, "first_line": "model.fit(X)"}),
        stage("report", "skipped", duration_s=None),
    ],
}  # fmt: skip


def test_run_view_shows_the_failed_cell_and_escapes_html():
    view = RunView(FAILED_RUN)
    html, text = view._repr_html_(), repr(view)
    assert "bad &lt;input&gt; &amp; more" in html and "<input>" not in html and "&lt;demo&gt;" in html
    assert 'stage train failed in cell 4 ("model.fit(X)"): ValueError: bad <input> & more' in text
    assert "nbops-status-failed" in html and "nbops-status-cached" in html and "nbops-status-skipped" in html
    assert "loss=0.1235" in text and "lr=0.001" in text
    assert "(from 20261129-000000-aaaaaa)" in text
    assert "!nbops resume 20261130-013000-ab12cd" in text


def test_progress_view_follows_the_events():
    drawn = []
    view = RunProgressView("demo.ipynb", ["load", "train", "report"], on_change=lambda v: drawn.append(repr(v)))
    view.created("20261130-013000-ab12cd")
    view("cached", "load", {"from": "20261129-000000-aaaaaa"})
    view("started", "train", {"attempt": 1})
    view("retry", "train", {"attempt": 1, "error": {"ename": "OSError", "evalue": "flaky", "cell": 2, "first_line": "x"}})
    assert view.data["stages"]["train"]["status"] == "retry" and "OSError: flaky in cell 2" in drawn[-1]
    view("started", "train", {"attempt": 2})
    assert "attempt 2" in view.line("train")
    view("succeeded", "train", {"seconds": 2.0})
    view("skipped", "report", {})
    view("run_done", "", {"run_id": "20261130-013000-ab12cd", "status": "succeeded"})
    assert len(drawn) == 8
    assert "run 20261130-013000-ab12cd of demo.ipynb: succeeded" in drawn[-1]
    assert "reused from run 20261129-000000-aaaaaa" in drawn[-1]
    assert view._repr_html_().count("nbops-status-") == 3


def test_runs_view_and_text_table():
    runs = [{"id": "20261130-013000-ab12cd", "status": "succeeded", "started_at": "2026-11-30T01:30:00+00:00",
             "duration_s": 3.0, "kind": "run", "params": {"k": 3}, "metrics": {"acc": 0.9},
             "stages": [{"name": "load", "status": "succeeded"}]}]  # fmt: skip
    text = repr(RunsView(runs, "demo.ipynb"))
    assert "2026-11-30 01:30:00" in text and "k=3" in text and "acc=0.9" in text and "load:succeeded" in text
    assert "no runs yet" in repr(RunsView([], "demo.ipynb"))
    assert text_table(["a", "bb"], [["xxx", "y"]]) == "a    bb\nxxx  y"


def test_a_run_says_who_ran_it_and_its_store_masked():
    run = {**FAILED_RUN, "user": "alice", "host": "build-7", "store": "postgresql://alice:***@db/runs + s3://bucket"}
    view = RunView(run)
    text, html = repr(view), view._repr_html_()
    assert "by        alice@build-7" in text and "store     postgresql://alice:***@db/runs + s3://bucket" in text
    assert "by alice@build-7" in html and "postgresql://alice:***@db/runs" in html
    # A run JSON without its store (api.run's result) shows the store the magic resolved.
    assert "store     /nb/.nbops" in repr(RunView(FAILED_RUN, store="/nb/.nbops"))
    assert "by " not in repr(RunView(FAILED_RUN))  # a record older than authors


def test_runs_view_names_the_store_and_each_author():
    runs = [{"id": "20261130-013000-ab12cd", "status": "succeeded", "user": "bob", "host": "laptop", "stages": []}]
    text = repr(RunsView(runs, "demo.ipynb", store="postgresql://bob:***@db/runs"))
    assert "store postgresql://bob:***@db/runs" in text
    assert "bob@laptop" in text.splitlines()[-1]
