"""``compare(reference_df, new_df)``: render a :class:`DriftTable`.

Overlaid distributions are drawn from shared-bin counts as proportions, so
frames of different lengths compare, and no row reaches the browser.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nbops.datastats.drift import ColumnDrift, DriftTable, drift_table
from nbops.widgets.view import FigureSlot, WidgetView, fmt, require_plotly, styled

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["CompareView", "compare", "overlay_figure"]

_STATIC_COLUMNS = 100


def compare(reference_df: pd.DataFrame, new_df: pd.DataFrame, **options: Any) -> CompareView:
    """Per-column drift of ``new_df`` against ``reference_df``, most drifted first.

    ``options`` go to :func:`~nbops.datastats.drift.drift_table` (``bins``,
    ``top_k``, ``alpha``, ``psi_threshold``). ``.drift`` has the numbers.
    """
    require_plotly()
    return CompareView(drift_table(reference_df, new_df, **options))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts.astype(np.float64)


def overlay_figure(col: ColumnDrift) -> go.Figure:
    """Reference and new distributions of one column, as shares of rows."""
    go = require_plotly()
    title = f"{col.name}: PSI {fmt(col.psi)}" + (f", {col.test} p={col.p_value:.3g}" if col.test else "")
    fig = go.Figure(layout={"title": {"text": title}, "barmode": "overlay", "bargap": 0.02, "height": 360})
    if col.edges is not None:
        edges = col.edges
        if edges.dtype.kind == "M":
            x = (edges[:-1] + (edges[1:] - edges[:-1]) // 2).astype(str)
        else:
            x = (edges[:-1] + edges[1:]) / 2
    elif col.labels is not None:
        x = list(col.labels)
    else:
        fig.add_annotation(text=col.note or "nothing to compare", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        return fig
    for name, counts in (("reference", col.reference_counts), ("new", col.new_counts)):
        fig.add_bar(x=x, y=_shares(counts), name=name, opacity=0.6)
    fig.update_yaxes(title_text="share of rows", tickformat=".0%")
    if col.labels is not None:
        fig.update_xaxes(type="category")
    return fig


def drift_bars_figure(drift: DriftTable) -> go.Figure:
    """PSI per column, most drifted first."""
    go = require_plotly()
    cols = [c for c in drift.columns if np.isfinite(c.psi)][:_STATIC_COLUMNS]
    colors = ["#d62728" if c.drifted else "#7f7f7f" for c in cols]
    fig = go.Figure(
        go.Bar(x=[c.name for c in cols], y=[c.psi for c in cols], marker_color=colors),
        layout={"title": {"text": "PSI by column (red: drifted)"}, "height": 320},
    )
    fig.add_hline(y=0.1, line_dash="dot")
    fig.update_xaxes(type="category")
    return fig


class CompareView(WidgetView):
    """Displays a :class:`DriftTable`; ``.drift`` holds the numbers."""

    title = "Compare"

    def __init__(self, drift: DriftTable):
        self.drift = drift

    def figures(self) -> dict[str, go.Figure]:
        figs = {"psi": drift_bars_figure(self.drift)}
        for col in self.drift.columns[:_STATIC_COLUMNS]:
            if col.edges is not None or col.labels is not None:
                figs[f"overlay:{col.name}"] = overlay_figure(col)
        return figs

    def _text(self) -> str:
        d = self.drift
        lines = [f"{len(d.columns)} columns compared, {len(d.drifted)} drifted"]
        for c in d.columns:
            if c.drifted:
                lines.append(f"  {c.name}: PSI {fmt(c.psi)} {c.test} p={c.p_value:.3g} {c.note}".rstrip())
        return "\n".join(lines)

    def _tables_html(self) -> str:
        table = self.drift.to_frame()
        if table.empty:
            return "<p>No columns to compare.</p>"
        return table.astype(object).map(fmt).to_html(index=False, escape=True, border=0)

    def _build_widget(self) -> Any:
        import ipywidgets as w

        columns = self.drift.columns
        table = w.HTML(styled(self._tables_html()))
        if not columns:
            return w.VBox([table])
        options = [(f"{c.name} (PSI {fmt(c.psi)})" + (" drifted" if c.drifted else ""), i) for i, c in enumerate(columns)]
        picker = w.Dropdown(options=options, value=0, description="column")
        slot = FigureSlot(overlay_figure(columns[0]))
        picker.observe(lambda change: slot.show(overlay_figure(columns[change["new"]])), names="value")
        header = w.HTML(f"<b>{len(self.drift.drifted)} of {len(columns)} columns drifted</b> {html.escape(', '.join(self.drift.drifted[:10]))}")
        return w.Tab(children=[w.VBox([header, picker, slot.widget]), table], titles=["Distributions", "Table"])
