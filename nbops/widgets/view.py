"""What explore/compare/runs_view return: a widget in a live kernel, HTML elsewhere.

A view's ``_repr_mimebundle_`` carries both the ipywidgets view (JupyterLab
with a kernel renders it) and a ``text/html`` fallback with tables and static
plotly figures, which is what a headless papermill run leaves in the executed
notebook and what nbviewer or an HTML export show.
"""

from __future__ import annotations

import html
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from nbops.errors import MissingExtraError
from nbops.text import format_number

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "FigureSlot",
    "WidgetView",
    "fmt",
    "human_bytes",
    "require_plotly",
    "styled",
    "table_html",
    "widgets_live",
]

_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def require_plotly() -> Any:
    """``plotly.graph_objects``, or a MissingExtraError naming the install command."""
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise MissingExtraError("nbops widgets", "widgets", "plotly") from None
    return go


def widgets_live() -> bool:
    """True inside an IPython kernel with ipywidgets: a frontend may render widgets."""
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class FigureSlot:
    """A spot in a widget layout that shows one plotly figure and can swap it.

    A ``go.FigureWidget`` where plotly's widget support (anywidget) is
    installed; otherwise an ``ipywidgets.Output`` that redraws the figure
    through plotly's own renderer, which JupyterLab shows just as well.
    """

    def __init__(self, figure: go.Figure):
        import ipywidgets as w

        go = require_plotly()
        try:
            self.widget: Any = go.FigureWidget(figure)
            self._live = True
            self.figure = figure
        except ImportError:  # plotly >= 6 needs anywidget for FigureWidget
            self.widget = w.Output()
            self._live = False
            self._draw(figure)

    def show(self, figure: go.Figure) -> None:
        """Replace what the slot shows with ``figure``."""
        if not self._live:
            self._draw(figure)
            return
        self.figure = figure
        with self.widget.batch_update():
            self.widget.data = []
            self.widget.add_traces(list(figure.data))
            self.widget.layout = figure.layout

    def _draw(self, figure: go.Figure) -> None:
        self.figure = figure
        if not widgets_live():
            return  # no kernel to capture the output: display would print to stdout
        from IPython.display import display

        self.widget.clear_output(wait=True)
        with self.widget:
            display(figure)


class WidgetView:
    """Base of the views: builds its widget lazily, renders static HTML always.

    Subclasses implement ``figures()`` (static plotly figures), ``_tables_html()``
    (the numbers as HTML tables) and ``_build_widget()``.
    """

    #: How the HTML fallback loads plotly.js: "cdn" (small output, needs
    #: network when viewed), True (embedded, ~4 MB per output) or False.
    html_plotlyjs: str | bool = "cdn"
    title = ""

    _widget: Any = None

    @property
    def widget(self) -> Any:
        """The ipywidgets view (built on first use; needs ipywidgets)."""
        if self._widget is None:
            try:
                import ipywidgets  # noqa: F401
            except ImportError:
                raise MissingExtraError("interactive nbops widgets", "widgets", "ipywidgets") from None
            self._widget = self._build_widget()
        return self._widget

    def figures(self) -> dict[str, go.Figure]:
        raise NotImplementedError

    def _tables_html(self) -> str:
        raise NotImplementedError

    def _build_widget(self) -> Any:
        raise NotImplementedError

    def _text(self) -> str:
        return f"<{type(self).__name__}>"

    def to_html(self, include_plotlyjs: str | bool | None = None) -> str:
        """A self-contained HTML fragment: tables, then each figure."""
        js = self.html_plotlyjs if include_plotlyjs is None else include_plotlyjs
        parts = [f'<div class="nbops-view">{_STYLE}<h3>{html.escape(self.title)}</h3>', self._tables_html()]
        for i, fig in enumerate(self.figures().values()):
            # plotly.js only needs loading once per fragment.
            parts.append(fig.to_html(full_html=False, include_plotlyjs=js if i == 0 else False))
        parts.append("</div>")
        return "\n".join(parts)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": self._text(), "text/html": self.to_html()}
        if widgets_live():
            try:
                bundle[_WIDGET_MIME] = self.widget._repr_mimebundle_()[_WIDGET_MIME]
            except Exception as exc:  # noqa: BLE001 - a display must not fail: the HTML still shows
                first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
                warnings.warn(f"nbops: showing the static view, the widget failed: {type(exc).__name__}: {first}", stacklevel=2)
        return bundle

    def __repr__(self) -> str:
        return self._text()


# JupyterLab's CSS variables, so the tables follow the theme (dark mode too).
_STYLE = """<style>
.nbops-view { overflow-x: auto; max-width: 100%; }
.nbops-view table { border-collapse: collapse; font-size: var(--jp-ui-font-size1, 12px); }
.nbops-view th, .nbops-view td { padding: 2px 8px; text-align: right; white-space: nowrap;
  border: none; border-bottom: 1px solid var(--jp-border-color2, #ddd); }
.nbops-view th { color: var(--jp-ui-font-color1, inherit); }
.nbops-view .nbops-flag { color: var(--jp-warn-color0, #b35900); }
</style>"""


def styled(fragment: str) -> str:
    """An HTML fragment in the views' themed wrapper (for ipywidgets.HTML values)."""
    return f'<div class="nbops-view">{_STYLE}{fragment}</div>'


def table_html(rows: list[tuple[str, Any]]) -> str:
    """A two-column key/value table with escaped cells."""
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(fmt(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def fmt(value: Any) -> str:
    """A number or value as a short display string."""
    if value is None or (isinstance(value, (float, np.floating)) and value != value):  # None, NaN: an empty cell
        return ""
    return format_number(value)


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
