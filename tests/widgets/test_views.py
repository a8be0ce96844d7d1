"""The rendered views: aggregated figure data, HTML fallback, widgets, hooks."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nbops.widgets as widgets
from nbops.errors import UsageError
from nbops.widgets import runs as runs_module
from nbops.widgets.explore_view import correlation_figure, distribution_figure, distributions_figure

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PACKAGE = Path(widgets.__file__).parent


def trace_lengths(fig) -> list[int]:
    return [len(t.x) for t in fig.data if getattr(t, "x", None) is not None]


def test_explore_figures_carry_bins_not_rows(frame_10k):
    view = widgets.explore(frame_10k, bins=25, top_k=10)
    assert view.summary.n_rows == 10_000
    for col in view.summary.columns:
        fig = distribution_figure(col)
        for trace in fig.data:
            assert len(trace.x) == len(trace.y) <= 25
    static = distributions_figure(view.summary)
    assert sum(trace_lengths(static)) <= 25 * frame_10k.shape[1]
    heat = correlation_figure(view.summary.correlation)
    assert np.asarray(heat.data[0].z).shape == (len(view.summary.correlation.columns),) * 2


def test_top_k_bars_and_other_bucket(frame_10k):
    col = widgets.explore(frame_10k, top_k=5).summary.column("country")
    fig = distribution_figure(col)
    assert list(fig.data[0].x) == list(col.top.labels) and len(fig.data[0].x) == 5
    assert fig.data[1].x == ("(other values)",) and fig.data[1].y[0] == col.top.other_count


def test_html_fallback_and_mimebundle_without_kernel(frame_10k):
    view = widgets.explore(frame_10k.head(500))
    bundle = view._repr_mimebundle_()
    assert WIDGET_MIME not in bundle  # no kernel here: the static view only
    assert "text/html" in bundle and "mostly_null is" in bundle["text/html"]
    assert "plotly" in bundle["text/html"] and "const holds a single value" in bundle["text/plain"]
    # Raw values must not leak: no email address is in the page, only top-k labels are.
    shown = set(view.summary.column("email").top.labels)
    leaked = [e for e in frame_10k["email"].head(500) if e in bundle["text/html"] and e not in shown]
    assert leaked == []


def test_mimebundle_includes_widget_in_a_kernel(monkeypatch, frame_10k):
    monkeypatch.setattr("nbops.widgets.view.widgets_live", lambda: True)
    bundle = widgets.explore(frame_10k.head(100))._repr_mimebundle_()
    assert set(bundle) >= {WIDGET_MIME, "text/html", "text/plain"}
    assert "model_id" in bundle[WIDGET_MIME]


def test_broken_widget_falls_back_to_html(monkeypatch, frame_10k):
    monkeypatch.setattr("nbops.widgets.view.widgets_live", lambda: True)
    view = widgets.explore(frame_10k.head(100))
    monkeypatch.setattr(type(view), "_build_widget", lambda self: 1 / 0)
    with pytest.warns(UserWarning, match="static view"):
        bundle = view._repr_mimebundle_()
    assert WIDGET_MIME not in bundle and "text/html" in bundle


def test_explore_widget_switches_column(frame_10k):
    view = widgets.explore(frame_10k)
    tab = view.widget
    assert tab.titles[:3] == ("Overview", "Columns", "Correlations")
    columns_tab = tab.children[1]
    picker = columns_tab.children[0]
    picker.value = [name for name, _ in picker.options].index("plan")
    stats_html = columns_tab.children[1].children[1].value
    assert "text" in stats_html


def test_figure_widget_slot_swaps_traces(frame_10k):
    pytest.importorskip("anywidget")  # plotly's FigureWidget needs it
    view = widgets.explore(frame_10k)
    columns_tab = view.widget.children[1]
    picker, figure = columns_tab.children[0], columns_tab.children[1].children[0].children[0]
    assert type(figure).__name__ == "FigureWidget"
    picker.value = [name for name, _ in picker.options].index("plan")
    assert sorted(figure.data[0].x) == ["enterprise", "free", "pro", "team"]
    assert figure.layout.xaxis.type == "category"


def test_compare_view(frame_10k):
    ref = frame_10k.iloc[:5_000]
    new = frame_10k.iloc[5_000:].assign(score=lambda d: d["score"] + 2)
    view = widgets.compare(ref, new, bins=20, top_k=15)
    assert view.drift.columns[0].name in ("score", "id", "email")  # id/email are disjoint by construction
    assert view.drift.column("score").drifted
    figs = view.figures()
    for name, fig in figs.items():
        if name.startswith("overlay:"):
            assert all(n <= 20 for n in trace_lengths(fig)), name  # 20 bins, or 15 labels + "other"
    assert "score" in view._repr_mimebundle_()["text/plain"]
    assert view.widget.titles == ("Distributions", "Table")


RUNS = [
    {
        "id": f"r{i}",
        "status": "failed" if i == 3 else "succeeded",
        "started_at": f"2026-11-30T01:{i:02d}:00+00:00",
        "params": {"lr": [0.1, 0.01, 0.001][i % 3], "optimizer": ["adam", "sgd"][i % 2]},
        "metrics": {"accuracy": acc, "latency_ms": lat},
    }
    for i, (acc, lat) in enumerate([(0.90, 100), (0.92, 150), (0.91, 90), (0.85, 80), (0.80, 120)])
]


def test_runs_view_from_dicts_and_frame():
    view = widgets.runs_view(RUNS)
    assert view.table.params == ("lr", "optimizer") and view.table.metrics == ("accuracy", "latency_ms")
    assert view.directions == ("max", "min")
    assert view.pareto_ids() == ["r1", "r2", "r3"]
    figs = view.figures()
    assert set(figs) == {"metric", "parallel", "pareto"}
    front = figs["pareto"].data[1]
    assert list(front.text) == ["r3", "r2", "r1"]  # sorted along x
    labels = [d.label for d in figs["parallel"].data[0].dimensions]
    assert labels == ["lr", "optimizer", "accuracy", "latency_ms"]
    same = widgets.runs_view(pd.DataFrame(RUNS))
    assert same.pareto_ids() == view.pareto_ids()
    flat = widgets.runs_view(view.table.frame)
    assert flat.table.metrics == view.table.metrics


def test_runs_view_choices_and_errors():
    view = widgets.runs_view(RUNS, metric="latency_ms", param="optimizer", pareto=("accuracy", "latency_ms"), directions=("max", "max"))
    assert view.pareto_ids() == ["r1"]
    fig = view.figures()["metric"]
    assert fig.layout.xaxis.type == "category"
    with pytest.raises(UsageError, match="no metric named 'loss'"):
        widgets.runs_view(RUNS, metric="loss")
    with pytest.raises(UsageError):
        widgets.runs_view({"id": "x"})
    assert widgets.runs_view([]).figures() == {}


def test_runs_widget_pareto_controls():
    view = widgets.runs_view(RUNS)
    pareto_tab = view.widget.children[3]
    goal_y = pareto_tab.children[1].children[1]
    goal_y.value = "max"
    assert view.pareto_ids() == ["r1"]
    assert "r1" in pareto_tab.children[3].value


def test_runs_path_goes_through_the_load_hook(monkeypatch, tmp_path):
    from nbops.errors import NbopsError

    with pytest.raises(NbopsError, match="not found"):
        widgets.runs_view(tmp_path / "churn.ipynb")
    monkeypatch.setattr(runs_module, "_load_runs", lambda path: RUNS)
    assert widgets.runs_view(str(tmp_path)).table.frame["id"].tolist() == [r["id"] for r in RUNS]


def test_import_is_light():
    code = "import nbops.widgets, sys; print(any(m.split('.')[0] in ('plotly', 'ipywidgets', 'scipy') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_widgets_import_only_errors_from_nbops():
    # A surface: it may use the library facade (nbops.api), the errors, the shared wording (status, text)
    # and the shared table statistics (datastats), nothing deeper.
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nbops"):
                assert node.module in ("nbops.errors", "nbops.api", "nbops.status", "nbops.text", "nbops.pareto") or node.module.startswith(
                    ("nbops.widgets", "nbops.datastats")
                ), (
                    path,
                    node.module,
                )
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("nbops") or alias.name.startswith("nbops.widgets") or alias.name == "nbops.api"


def test_nbops_forwards_to_the_widget_functions(frame_10k):
    import nbops

    view = nbops.explore(frame_10k.head(50))  # imports the view modules
    assert nbops.explore is widgets.explore and callable(widgets.compare) and callable(widgets.runs_view)
    assert view.summary.n_rows == 50
    assert widgets.__all__ == ["compare", "explore", "runs_view"]


def test_runs_view_reads_a_real_store(tmp_path):
    import shutil

    import nbops.api as api

    nb = tmp_path / "kale.ipynb"
    shutil.copy(Path(__file__).resolve().parents[1] / "notebooks" / "kale.ipynb", nb)
    for k in (2, 3):
        api.run(nb, {"k": k})
    for target in (nb, tmp_path / ".nbops"):
        view = widgets.runs_view(target, metric="score", param="k")
        assert sorted(view.table.frame["params.k"].tolist()) == [2, 3]
