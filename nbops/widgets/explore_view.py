"""``explore(df)``: render a :class:`FrameSummary` as tabs of tables and figures.

Every figure is drawn from the summary's bins and counts, so a million-row
frame sends a few hundred numbers to the browser, not its rows.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nbops.widgets.stats import DATETIME, NUMERIC, ColumnSummary, Correlation, FrameSummary
from nbops.widgets.summary import summarize
from nbops.widgets.view import FigureSlot, WidgetView, fmt, human_bytes, require_plotly, styled, table_html

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["ExploreView", "correlation_figure", "distribution_figure", "explore"]

# A static page with a trace per column stays small up to here.
_STATIC_COLUMNS = 100


def explore(df: pd.DataFrame, **options: Any) -> ExploreView:
    """Explore a DataFrame: overview, distributions, correlations, flags.

    ``options`` go to :func:`~nbops.widgets.summary.summarize` (``bins``,
    ``top_k``, ``sample_rows``, ``seed``, ``thresholds``). The result shows as
    a widget in JupyterLab and as HTML elsewhere; ``.summary`` has the numbers.
    """
    require_plotly()
    return ExploreView(summarize(df, **options))


def distribution_figure(col: ColumnSummary) -> go.Figure:
    """A histogram (numbers, datetimes) or top-k bar chart (everything else)."""
    go = require_plotly()
    fig = go.Figure(layout={"title": {"text": f"{col.name} ({col.dtype})"}, "bargap": 0.02, "height": 360})
    if col.histogram is not None:
        h = col.histogram
        x = h.centers.astype(str) if h.edges.dtype.kind == "M" else h.centers
        widths = np.diff(h.edges).astype(np.float64)
        if h.edges.dtype.kind == "M":  # plotly wants datetime bar widths in milliseconds
            unit = np.datetime_data(h.edges.dtype)[0]
            widths = widths * (np.timedelta64(1, unit) / np.timedelta64(1, "ms"))
        fig.add_bar(x=x, y=h.counts, width=widths, name=col.name, hovertemplate="%{x}: %{y:,}<extra></extra>")
        fig.update_xaxes(title_text=col.name + (f" ({col.timezone})" if col.timezone else ""))
    elif col.top is not None:
        fig.add_bar(x=list(col.top.labels), y=col.top.counts, name="most frequent")
        if col.top.other_count:
            fig.add_bar(x=["(other values)"], y=[col.top.other_count], name="other", marker_color="lightgrey")
        fig.update_xaxes(type="category")
    else:
        fig.add_annotation(text="no values to draw (all null)", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_yaxes(title_text="rows")
    return fig


def correlation_figure(corr: Correlation) -> go.Figure:
    """Heatmap of the Pearson correlation matrix."""
    go = require_plotly()
    names = list(corr.columns)
    fig = go.Figure(
        go.Heatmap(z=corr.matrix, x=names, y=names, zmin=-1, zmax=1, colorscale="RdBu", reversescale=True),
        layout={"title": {"text": f"Correlation ({corr.sample_rows:,} rows)"}, "height": max(320, 160 + 24 * len(names))},
    )
    fig.update_yaxes(autorange="reversed")
    return fig


def distributions_figure(summary: FrameSummary) -> go.Figure:
    """All columns' distributions in one static figure, chosen by a dropdown.

    The widget swaps figures through the kernel; this one works without one.
    """
    go = require_plotly()
    cols = summary.columns[:_STATIC_COLUMNS]
    fig = go.Figure(layout={"height": 380, "bargap": 0.02})
    owner = []  # owner[i]: the column trace i belongs to
    for index, col in enumerate(cols):
        for trace in distribution_figure(col).data:
            trace.visible = index == 0
            fig.add_trace(trace)
            owner.append(index)
    buttons = [
        {
            "label": col.name,
            "method": "update",
            "args": [
                {"visible": [o == index for o in owner]},
                # Columns differ in axis type; autorange refits the shown trace.
                {
                    "title.text": f"{col.name} ({col.dtype})",
                    "xaxis.type": _axis_type(col),
                    "xaxis.autorange": True,
                    "yaxis.autorange": True,
                },
            ],
        }
        for index, col in enumerate(cols)
    ]
    if cols:
        fig.update_layout(
            title={"text": f"{cols[0].name} ({cols[0].dtype})"},
            xaxis={"type": _axis_type(cols[0])},
            updatemenus=[{"buttons": buttons, "x": 1.0, "xanchor": "right", "y": 1.15, "yanchor": "top"}],
        )
    return fig


def _axis_type(col: ColumnSummary) -> str:
    if col.histogram is None:
        return "category"
    return "date" if col.kind == DATETIME else "linear"


class ExploreView(WidgetView):
    """Displays a :class:`FrameSummary`; ``.summary`` holds the numbers."""

    title = "Explore"

    def __init__(self, summary: FrameSummary):
        self.summary = summary

    def figures(self) -> dict[str, go.Figure]:
        figs = {"distributions": distributions_figure(self.summary)}
        if len(self.summary.correlation.columns) > 1:
            figs["correlation"] = correlation_figure(self.summary.correlation)
        return figs

    def _text(self) -> str:
        s = self.summary
        lines = [f"{s.n_rows:,} rows x {s.n_columns} columns, {human_bytes(s.memory_bytes)}"]
        lines += [f"  flag: {f.message}" for f in s.flags]
        return "\n".join(lines)

    def _overview_html(self) -> str:
        s = self.summary
        rows: list[tuple[str, Any]] = [
            ("rows", s.n_rows),
            ("columns", s.n_columns),
            ("memory", human_bytes(s.memory_bytes)),
            ("duplicate rows", "unknown" if s.n_duplicate_rows is None else s.n_duplicate_rows),
            ("dtypes", ", ".join(f"{k}: {v}" for k, v in s.dtype_counts.items())),
        ]
        notes = "".join(f"<p><i>{html.escape(n)}</i></p>" for n in s.notes)
        return table_html(rows) + notes

    def _flags_html(self) -> str:
        if not self.summary.flags:
            return "<p>No flags.</p>"
        items = "".join(f'<li class="nbops-flag">{html.escape(f.message)}</li>' for f in self.summary.flags)
        return f"<ul>{items}</ul>"

    def _columns_html(self) -> str:
        table = self.summary.to_frame()
        if table.empty:
            return "<p>No columns.</p>"
        table["memory"] = table["memory"].map(human_bytes)
        return table.astype(object).map(fmt).to_html(index=False, escape=True, border=0)

    def _tables_html(self) -> str:
        return "<h4>Overview</h4>" + self._overview_html() + "<h4>Flags</h4>" + self._flags_html() + "<h4>Columns</h4>" + self._columns_html()

    def _column_html(self, col: ColumnSummary) -> str:
        rows: list[tuple[str, Any]] = [
            ("kind", col.kind),
            ("nulls", f"{col.n_null:,} ({col.null_fraction:.1%})"),
            ("distinct", col.n_distinct),
        ]
        if col.kind in (NUMERIC, DATETIME):
            rows += [("min", col.minimum), ("max", col.maximum)]
        if col.kind == NUMERIC:
            rows += [("mean", col.mean), ("std", col.std), ("skew", col.skew), ("infinite", col.n_inf)]
            rows += [(f"q{k}", v) for k, v in col.quantiles.items()]
        if col.python_types:
            rows.append(("python types", ", ".join(col.python_types)))
        flags = "".join(f'<li class="nbops-flag">{html.escape(f.message)}</li>' for f in self.summary.flags_of(column=col.name))
        return table_html(rows) + (f"<ul>{flags}</ul>" if flags else "")

    def _build_widget(self) -> Any:
        import ipywidgets as w

        s = self.summary
        tabs: list[tuple[str, Any]] = [("Overview", w.HTML(styled(self._overview_html() + self._columns_html())))]
        if s.columns:
            tabs.append(("Columns", self._columns_widget()))
        if len(s.correlation.columns) > 1:
            tabs.append(("Correlations", FigureSlot(correlation_figure(s.correlation)).widget))
        tabs.append((f"Flags ({len(s.flags)})", w.HTML(styled(self._flags_html()))))
        return w.Tab(children=[t[1] for t in tabs], titles=[t[0] for t in tabs])

    def _columns_widget(self) -> Any:
        import ipywidgets as w

        columns = self.summary.columns
        # Options by position: column names may repeat.
        picker = w.Dropdown(options=[(c.name, i) for i, c in enumerate(columns)], value=0, description="column")
        # The stats keep their width; the figure takes what is left.
        stats = w.HTML(styled(self._column_html(columns[0])), layout=w.Layout(min_width="300px", flex="0 0 auto"))
        slot = FigureSlot(distribution_figure(columns[0]))

        def on_pick(change: dict) -> None:
            col = columns[change["new"]]
            stats.value = styled(self._column_html(col))
            slot.show(distribution_figure(col))

        picker.observe(on_pick, names="value")
        # A Box carries the flex sizing: a go.FigureWidget's .layout is plotly's, not ipywidgets'.
        figure_box = w.Box([slot.widget], layout=w.Layout(flex="1 1 auto"))
        return w.VBox([picker, w.HBox([figure_box, stats], layout=w.Layout(align_items="flex-start"))])
