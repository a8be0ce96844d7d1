"""Runs (as the run store returns them) flattened into one table.

A run is ``{"id", "status", "started_at", "params": {...}, "metrics": {...}}``
plus optional scalar fields (``ended_at``, ``duration_s``, ``notebook``).
Parameters become columns ``params.NAME``, metrics ``metrics.NAME``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nbops.errors import UsageError
from nbops.text import article

__all__ = ["RunsTable", "guess_direction", "runs_table"]

PARAM = "params."
METRIC = "metrics."
_BASE = ["id", "status", "started_at"]
# Metric names that usually mean "lower is better".
_LOWER_IS_BETTER = ("loss", "error", "err", "mse", "mae", "rmse", "time", "latency", "duration", "cost", "perplexity")


@dataclass(frozen=True)
class RunsTable:
    """One row per run, oldest first; ``params`` and ``metrics`` list the names."""

    frame: pd.DataFrame
    params: tuple[str, ...]
    metrics: tuple[str, ...]

    def param(self, name: str) -> pd.Series:
        return self.frame[PARAM + name]

    def metric(self, name: str) -> pd.Series:
        return self.frame[METRIC + name]

    def param_is_numeric(self, name: str) -> bool:
        return pd.api.types.is_numeric_dtype(self.param(name)) and not pd.api.types.is_bool_dtype(self.param(name))


def guess_direction(metric: str) -> str:
    """``"min"`` for losses, errors and times, ``"max"`` for everything else."""
    lowered = metric.lower()
    return "min" if any(word in lowered for word in _LOWER_IS_BETTER) else "max"


def runs_table(runs: Iterable[dict[str, Any]] | pd.DataFrame) -> RunsTable:
    """Flatten runs (a list of run dicts, or a DataFrame of them) into a :class:`RunsTable`.

    A DataFrame may hold ``params``/``metrics`` columns of dicts, or already
    flat ``params.NAME``/``metrics.NAME`` columns.
    """
    if isinstance(runs, pd.DataFrame):
        if {"params", "metrics"} & set(runs.columns):
            return runs_table(runs.to_dict("records"))
        return _from_flat(runs.copy())
    if isinstance(runs, dict) or not isinstance(runs, Iterable):
        raise UsageError(
            f"runs must be a list of run dicts or a DataFrame, not {type(runs).__name__}",
            "pass nbops.api.list_runs(notebook_path), or a notebook/store path",
        )
    rows = [_flatten(i, run) for i, run in enumerate(runs)]
    return _from_flat(pd.DataFrame(rows) if rows else pd.DataFrame(columns=_BASE))


def _flatten(index: int, run: Any) -> dict[str, Any]:
    if not isinstance(run, dict):
        raise UsageError(
            f"runs[{index}] is {article(type(run).__name__)}, not a run dict",
            'each run looks like {"id": ..., "status": ..., "params": {...}, "metrics": {...}}',
        )
    row = {k: v for k, v in run.items() if k not in ("params", "metrics") and _is_scalar(v)}
    row.setdefault("id", str(index))
    for name, value in (run.get("params") or {}).items():
        row[PARAM + str(name)] = value if _is_scalar(value) else str(value)
    for name, value in (run.get("metrics") or {}).items():
        row[METRIC + str(name)] = value
    return row


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, np.generic))


def _from_flat(frame: pd.DataFrame) -> RunsTable:
    for column in _BASE:
        if column not in frame.columns:
            frame[column] = None if column != "id" else [str(i) for i in range(len(frame))]
    frame["id"] = frame["id"].astype(str)
    frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True, errors="coerce", format="ISO8601")
    params = tuple(c[len(PARAM) :] for c in frame.columns if str(c).startswith(PARAM))
    metrics = tuple(c[len(METRIC) :] for c in frame.columns if str(c).startswith(METRIC))
    for name in metrics:
        # A metric that failed to record (None, "nan", a string) is missing, not an error.
        frame[METRIC + name] = pd.to_numeric(frame[METRIC + name], errors="coerce").astype(np.float64)
    for name in params:
        frame[PARAM + name] = _tidy_param(frame[PARAM + name])
    others = [c for c in frame.columns if c not in _BASE and not str(c).startswith((PARAM, METRIC))]
    ordered = _BASE + [PARAM + p for p in params] + [METRIC + m for m in metrics] + others
    frame = frame[ordered].sort_values("started_at", kind="stable", na_position="last").reset_index(drop=True)
    return RunsTable(frame, params, metrics)


def _tidy_param(values: pd.Series) -> pd.Series:
    """Numbers as numbers; anything mixed as strings, so it sorts and plots."""
    if pd.api.types.is_numeric_dtype(values):
        return values
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().sum() == values.notna().sum() and not values.map(lambda v: isinstance(v, bool)).any():
        return numeric
    return values.map(lambda v: v if v is None or isinstance(v, str) else str(v)).astype(object)
