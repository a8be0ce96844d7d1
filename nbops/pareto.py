"""``pareto_front(points, directions)``: the runs no other run beats on every metric.

The one Pareto front of nbops: the runs view (widgets) and sweeps (``nbops sweep
show``) both use it. Pure numpy, importable from any layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nbops.errors import UsageError

__all__ = ["pareto_front"]

_DIRECTIONS = {"max": -1.0, "min": 1.0, "maximize": -1.0, "minimize": 1.0}  # ours and optuna's words
_CHUNK = 1024  # rows compared at once: bounds memory to CHUNK x n x k booleans


def pareto_front(points: np.ndarray | Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    """A boolean mask of the non-dominated points.

    ``points`` is ``n x k`` (one row per run, one column per metric) and
    ``directions`` says, per metric, ``"max"`` or ``"min"`` (optuna's
    ``"maximize"``/``"minimize"`` too). A point is
    dominated when another is at least as good on every metric and better on
    one. Rows with a NaN are never on the front; equal points are both on it.

    >>> pareto_front([[1, 1], [2, 2], [0, 3]], ["max", "max"]).tolist()
    [False, True, True]
    """
    values = np.asarray(points, dtype=np.float64)
    if values.ndim != 2:
        raise UsageError(f"points must be a 2-d array (runs x metrics), got shape {values.shape}", "pass one row per run, one column per metric")
    if len(directions) != values.shape[1] or any(d not in _DIRECTIONS for d in directions):
        raise UsageError(
            f"directions must be 'max' or 'min' for each of the {values.shape[1]} metrics, got {list(directions)}",
            "e.g. directions=['max', 'min']",
        )
    # Turn every metric into "smaller is better".
    costs = values * np.array([_DIRECTIONS[d] for d in directions])
    valid = ~np.isnan(costs).any(axis=1)
    front = np.zeros(len(costs), dtype=bool)
    candidates = costs[valid]
    dominated = np.zeros(len(candidates), dtype=bool)
    for start in range(0, len(candidates), _CHUNK):
        block = candidates[start : start + _CHUNK, None, :]  # the points being judged
        no_worse = (candidates[None, :, :] <= block).all(axis=2)
        better = (candidates[None, :, :] < block).any(axis=2)
        dominated[start : start + _CHUNK] = (no_worse & better).any(axis=1)
    front[np.flatnonzero(valid)] = ~dominated
    return front
