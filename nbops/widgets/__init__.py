"""Exploration widgets: ``explore(df)``, ``compare(ref, new)``, ``runs_view(runs)``.

plotly and ipywidgets are imported on first use, inside these functions, so
``import nbops`` stays light. The views live in ``explore_view``,
``compare_view`` and ``runs``: a submodule named like a function here would
replace that function as an attribute of this package once imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["compare", "explore", "runs_view"]

if TYPE_CHECKING:
    from nbops.widgets.compare_view import CompareView
    from nbops.widgets.explore_view import ExploreView
    from nbops.widgets.runs import RunsView


def explore(df: Any, **options: Any) -> ExploreView:
    """Overview, distributions, correlations and flags of a DataFrame.

    See :func:`nbops.widgets.explore_view.explore`.
    """
    from nbops.widgets.explore_view import explore as _explore

    return _explore(df, **options)


def compare(reference_df: Any, new_df: Any, **options: Any) -> CompareView:
    """Per-column drift of ``new_df`` against ``reference_df``, most drifted first.

    See :func:`nbops.widgets.compare_view.compare`.
    """
    from nbops.widgets.compare_view import compare as _compare

    return _compare(reference_df, new_df, **options)


def runs_view(runs: Any, **options: Any) -> RunsView:
    """Runs table, metric against parameter, parallel coordinates, Pareto front.

    See :func:`nbops.widgets.runs.runs_view`.
    """
    from nbops.widgets.runs import runs_view as _runs_view

    return _runs_view(runs, **options)
