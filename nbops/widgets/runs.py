"""``runs_view(runs)``: the runs table, a metric against a parameter, parallel
coordinates, and the Pareto front of two metrics.

Runs are few (one row each), so unlike explore/compare these figures carry
one point per run.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nbops.errors import NotFoundError, UsageError
from nbops.pareto import pareto_front
from nbops.widgets.runs_table import METRIC, PARAM, RunsTable, guess_direction, runs_table
from nbops.widgets.view import FigureSlot, WidgetView, fmt, require_plotly, styled

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["RunsView", "metric_figure", "parallel_figure", "pareto_figure", "runs_view"]


def _load_runs(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Runs recorded for a notebook, a converted pipeline folder, or a run store folder."""
    import nbops.api as api  # a surface calls the library facade

    p = Path(path)
    if p.is_dir() and (p / "runs.db").exists():
        return api.list_runs(None, store=p, limit=100_000)
    if not p.exists():
        raise NotFoundError(f"runs_view: {p} not found", "pass a notebook, a pipeline folder or a run store (.nbops) folder")
    return api.list_runs(p, limit=100_000)


def runs_view(
    runs: Any,
    *,
    metric: str | None = None,
    param: str | None = None,
    pareto: tuple[str, str] | None = None,
    directions: tuple[str, str] | None = None,
) -> RunsView:
    """Show runs: table, ``metric`` against ``param``, parallel coordinates, Pareto front.

    ``runs`` is a list of run dicts (``id``, ``status``, ``started_at``,
    ``params``, ``metrics``), a DataFrame of them, or a notebook/store path.
    ``pareto`` names two metrics and ``directions`` says ``"max"``/``"min"``
    for each (guessed from the names when omitted: losses and times ``min``).
    """
    require_plotly()
    if isinstance(runs, (str, os.PathLike)):
        runs = _load_runs(runs)
    table = runs_table(runs)
    metric = _check(metric, table.metrics, "metric")
    param = _check(param, table.params, "param")
    pair = pareto or (tuple(table.metrics[:2]) if len(table.metrics) >= 2 else None)
    if pair is not None:
        for name in pair:
            _check(name, table.metrics, "metric")
        directions = directions or (guess_direction(pair[0]), guess_direction(pair[1]))
    return RunsView(table, metric, param, pair, directions)


def _check(name: str | None, names: tuple[str, ...], what: str) -> str | None:
    if name is None:
        return names[0] if names else None
    if name not in names:
        raise UsageError(f"no {what} named {name!r} in these runs", f"choose one of: {', '.join(names) or '(none)'}")
    return name


def metric_figure(table: RunsTable, metric: str, param: str) -> go.Figure:
    """One metric against one parameter, a trace per run status."""
    go = require_plotly()
    fig = go.Figure(layout={"title": {"text": f"{metric} by {param}"}, "height": 380})
    frame = table.frame
    for status, group in frame.groupby("status", dropna=False, sort=True):
        fig.add_scatter(
            x=group[PARAM + param].tolist(),
            y=group[METRIC + metric].tolist(),
            mode="markers",
            name=str(status),
            text=group["id"].tolist(),
            hovertemplate="%{text}<br>" + f"{param}=%{{x}}<br>{metric}=%{{y}}<extra></extra>",
        )
    fig.update_xaxes(title_text=param, type=None if table.param_is_numeric(param) else "category")
    fig.update_yaxes(title_text=metric)
    return fig


def parallel_figure(table: RunsTable, color_metric: str | None) -> go.Figure:
    """Parallel coordinates over every parameter and metric, coloured by one metric."""
    go = require_plotly()
    dims = [_dimension(table.frame[PARAM + p], p) for p in table.params]
    dims += [_dimension(table.frame[METRIC + m], m) for m in table.metrics]
    line: dict[str, Any] = {}
    if color_metric:
        line = {"color": table.metric(color_metric).to_numpy(), "colorscale": "Viridis", "showscale": True, "colorbar": {"title": {"text": color_metric}}}
    return go.Figure(go.Parcoords(dimensions=dims, line=line), layout={"height": 420, "title": {"text": "Runs"}})


def _dimension(values: pd.Series, label: str) -> dict[str, Any]:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return {"label": label, "values": values.to_numpy(dtype=np.float64)}
    # Parcoords needs numbers: categories become codes with their labels as ticks.
    codes, uniques = pd.factorize(values.astype(str), sort=True)
    return {"label": label, "values": codes, "tickvals": list(range(len(uniques))), "ticktext": list(uniques)}


def pareto_figure(table: RunsTable, metrics: tuple[str, str], directions: tuple[str, str]) -> go.Figure:
    """All runs on two metrics, the Pareto front highlighted and joined."""
    go = require_plotly()
    x, y = table.metric(metrics[0]).to_numpy(), table.metric(metrics[1]).to_numpy()
    on_front = pareto_front(np.column_stack([x, y]), directions)
    ids = table.frame["id"].to_numpy()
    title = f"Pareto front: {metrics[0]} ({directions[0]}) vs {metrics[1]} ({directions[1]})"
    fig = go.Figure(layout={"title": {"text": title}, "height": 420})
    fig.add_scatter(
        x=x[~on_front],
        y=y[~on_front],
        text=ids[~on_front],
        mode="markers",
        name="dominated",
        marker={"color": "lightgrey"},
        hovertemplate="%{text}<extra></extra>",
    )
    order = np.argsort(x[on_front], kind="stable")
    fig.add_scatter(
        x=x[on_front][order],
        y=y[on_front][order],
        text=ids[on_front][order],
        mode="lines+markers",
        # The staircase bounds the region the front dominates.
        name="Pareto front",
        line={"shape": "vh" if directions[0] == "max" else "hv"},
        marker={"color": "#d62728", "size": 10},
        hovertemplate="%{text}<extra></extra>",
    )
    fig.update_xaxes(title_text=metrics[0])
    fig.update_yaxes(title_text=metrics[1])
    return fig


class RunsView(WidgetView):
    """Displays a :class:`RunsTable`; ``.table`` holds the flattened runs."""

    title = "Runs"

    def __init__(self, table: RunsTable, metric: str | None, param: str | None, pareto: tuple[str, str] | None, directions: tuple[str, str] | None):
        self.table = table
        self.metric, self.param = metric, param
        self.pareto, self.directions = pareto, directions

    def pareto_ids(self) -> list[str]:
        """Ids of the runs on the Pareto front of the chosen two metrics."""
        if self.pareto is None or self.directions is None:
            return []
        points = np.column_stack([self.table.metric(m).to_numpy() for m in self.pareto])
        return self.table.frame["id"][pareto_front(points, self.directions)].tolist()

    def figures(self) -> dict[str, go.Figure]:
        figs: dict[str, go.Figure] = {}
        if self.metric and self.param:
            figs["metric"] = metric_figure(self.table, self.metric, self.param)
        if self.table.params or self.table.metrics:
            figs["parallel"] = parallel_figure(self.table, self.metric)
        if self.pareto and self.directions:
            figs["pareto"] = pareto_figure(self.table, self.pareto, self.directions)
        return figs

    def _text(self) -> str:
        t = self.table
        return f"{len(t.frame)} runs, params: {', '.join(t.params) or '-'}, metrics: {', '.join(t.metrics) or '-'}"

    def _tables_html(self) -> str:
        if self.table.frame.empty:
            return "<p>No runs.</p>"
        frame = self.table.frame.copy()
        frame["started_at"] = frame["started_at"].dt.strftime("%Y-%m-%d %H:%M:%S")
        return frame.astype(object).map(fmt).to_html(index=False, escape=True, border=0)

    def _build_widget(self) -> Any:
        import ipywidgets as w

        tabs: list[tuple[str, Any]] = [("Runs", w.HTML(styled(self._tables_html())))]
        if self.metric and self.param:
            tabs.append(("Metric vs parameter", self._metric_widget()))
        if self.table.params or self.table.metrics:
            tabs.append(("Parallel coordinates", self._parallel_widget()))
        if self.pareto and self.directions:
            tabs.append(("Pareto front", self._pareto_widget()))
        return w.Tab(children=[t[1] for t in tabs], titles=[t[0] for t in tabs])

    def _metric_widget(self) -> Any:
        import ipywidgets as w

        metric = w.Dropdown(options=self.table.metrics, value=self.metric, description="metric")
        param = w.Dropdown(options=self.table.params, value=self.param, description="parameter")
        slot = FigureSlot(metric_figure(self.table, self.metric, self.param))

        def redraw(_: Any) -> None:
            slot.show(metric_figure(self.table, metric.value, param.value))

        metric.observe(redraw, names="value")
        param.observe(redraw, names="value")
        return w.VBox([w.HBox([metric, param]), slot.widget])

    def _parallel_widget(self) -> Any:
        import ipywidgets as w

        slot = FigureSlot(parallel_figure(self.table, self.metric))
        if not self.table.metrics:
            return slot.widget
        color = w.Dropdown(options=self.table.metrics, value=self.metric, description="colour")
        color.observe(lambda change: slot.show(parallel_figure(self.table, change["new"])), names="value")
        return w.VBox([color, slot.widget])

    def _pareto_widget(self) -> Any:
        import ipywidgets as w

        assert self.pareto and self.directions
        pickers = [w.Dropdown(options=self.table.metrics, value=m, description=axis) for m, axis in zip(self.pareto, ("x metric", "y metric"))]
        goals = [w.ToggleButtons(options=["max", "min"], value=d, style={"button_width": "48px"}) for d in self.directions]
        slot = FigureSlot(pareto_figure(self.table, self.pareto, self.directions))
        front = w.HTML(self._front_html())

        def redraw(_: Any) -> None:
            self.pareto = (pickers[0].value, pickers[1].value)
            self.directions = (goals[0].value, goals[1].value)
            slot.show(pareto_figure(self.table, self.pareto, self.directions))
            front.value = self._front_html()

        for control in (*pickers, *goals):
            control.observe(redraw, names="value")
        return w.VBox([w.HBox([pickers[0], goals[0]]), w.HBox([pickers[1], goals[1]]), slot.widget, front])

    def _front_html(self) -> str:
        ids = self.pareto_ids()
        return f"<b>On the front ({len(ids)}):</b> {html.escape(', '.join(ids))}"
