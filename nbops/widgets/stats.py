"""The numbers behind the exploration widgets, as plain frozen dataclasses.

Everything here is already aggregated (counts, bin edges, a few quantiles):
a view renders these and never touches the rows of the frame they describe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nbops.datastats.kinds import BOOLEAN, CATEGORICAL, DATETIME, EMPTY, NUMERIC, TEXT

__all__ = [
    "BOOLEAN",
    "CATEGORICAL",
    "DATETIME",
    "EMPTY",
    "NUMERIC",
    "TEXT",
    "ColumnSummary",
    "Correlation",
    "Flag",
    "FrameSummary",
    "Histogram",
    "Thresholds",
    "TopValues",
]

# Column kinds (how a column is summarized and drawn) are defined with the statistics
# in nbops.datastats, which the services use too; re-exported here for the views.


@dataclass(frozen=True)
class Thresholds:
    """When a column earns a flag. Fractions are of the column's rows."""

    high_null: float = 0.5
    correlation: float = 0.95
    skew: float = 2.0
    near_unique: float = 0.9
    # Cardinality and skew flags on a handful of rows are noise, not findings.
    min_rows: int = 20


@dataclass(frozen=True)
class Histogram:
    """Counts of values in ``len(edges) - 1`` bins.

    ``edges`` are floats, or ``datetime64`` for a datetime column (wall time in
    the column's time zone). Only finite, non-null values are counted.
    """

    edges: np.ndarray
    counts: np.ndarray

    @property
    def centers(self) -> np.ndarray:
        if self.edges.dtype.kind == "M":
            left = self.edges[:-1]
            return left + (self.edges[1:] - left) // 2
        return (self.edges[:-1] + self.edges[1:]) / 2


@dataclass(frozen=True)
class TopValues:
    """The most frequent values (as display strings), most frequent first."""

    labels: tuple[str, ...]
    counts: np.ndarray
    other_count: int  # non-null values outside ``labels``


@dataclass(frozen=True)
class ColumnSummary:
    """One column: counts for every kind, plus stats that fit its kind."""

    name: str
    dtype: str
    kind: str
    n_rows: int
    n_null: int
    n_distinct: int  # distinct non-null values
    memory_bytes: int
    n_inf: int = 0
    minimum: float | str | None = None  # str (ISO) for datetimes
    maximum: float | str | None = None
    mean: float | None = None
    std: float | None = None
    skew: float | None = None
    quantiles: dict[str, float] = field(default_factory=dict)
    histogram: Histogram | None = None
    top: TopValues | None = None
    python_types: tuple[str, ...] = ()  # for object columns holding several types
    timezone: str | None = None

    @property
    def n_values(self) -> int:
        """Non-null values."""
        return self.n_rows - self.n_null

    @property
    def null_fraction(self) -> float:
        return self.n_null / self.n_rows if self.n_rows else 0.0

    @property
    def distinct_fraction(self) -> float:
        return self.n_distinct / self.n_values if self.n_values else 0.0


@dataclass(frozen=True)
class Correlation:
    """Pearson correlation between the numeric columns.

    ``sample_rows`` rows were used; fewer than the frame's rows when it was
    computed on a seeded random sample.
    """

    columns: tuple[str, ...]
    matrix: np.ndarray
    sample_rows: int


@dataclass(frozen=True)
class Flag:
    """Something a data test would want to check, e.g. a 90 %-null column."""

    # all-null, high-null, constant, infinite, correlated, skewed, id-like,
    # near-unique, mixed-types or duplicate-rows
    kind: str
    columns: tuple[str, ...]
    message: str
    value: float


@dataclass(frozen=True)
class FrameSummary:
    """What :func:`nbops.widgets.summary.summarize` found in a frame."""

    n_rows: int
    n_columns: int
    memory_bytes: int
    n_duplicate_rows: int | None  # None when rows could not be hashed
    columns: tuple[ColumnSummary, ...]
    correlation: Correlation
    flags: tuple[Flag, ...]
    notes: tuple[str, ...] = ()

    def column(self, name: str) -> ColumnSummary:
        """The summary of column ``name`` (KeyError if there is none)."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def flags_of(self, kind: str | None = None, column: str | None = None) -> list[Flag]:
        """Flags of one kind and/or touching one column."""
        return [f for f in self.flags if (kind is None or f.kind == kind) and (column is None or column in f.columns)]

    @property
    def dtype_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for col in self.columns:
            counts[col.dtype] = counts.get(col.dtype, 0) + 1
        return counts

    def to_frame(self) -> pd.DataFrame:
        """One row per column: the overview table."""
        rows = [
            {
                "column": c.name,
                "dtype": c.dtype,
                "kind": c.kind,
                "nulls": c.n_null,
                "null %": round(100 * c.null_fraction, 1),
                "distinct": c.n_distinct,
                "min": c.minimum,
                "max": c.maximum,
                "mean": c.mean,
                "std": c.std,
                "skew": c.skew,
                "memory": c.memory_bytes,
                "flags": ", ".join(f.kind for f in self.flags_of(column=c.name)),
            }
            for c in self.columns
        ]
        return pd.DataFrame(rows, columns=list(rows[0]) if rows else None)
