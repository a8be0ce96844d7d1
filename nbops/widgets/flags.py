"""Flags a data test would want, read off the computed summaries."""

from __future__ import annotations

import numpy as np

from nbops.widgets.stats import (
    CATEGORICAL,
    EMPTY,
    NUMERIC,
    TEXT,
    ColumnSummary,
    Correlation,
    Flag,
    Thresholds,
)

__all__ = ["column_flags", "correlation_flags", "duplicate_flag"]


def column_flags(col: ColumnSummary, t: Thresholds) -> list[Flag]:
    """Flags about one column alone."""
    name = (col.name,)
    if col.kind == EMPTY:
        return [Flag("all-null", name, f"{col.name} is null in every row", 1.0)]
    flags = []
    if col.null_fraction >= t.high_null:
        flags.append(Flag("high-null", name, f"{col.name} is {col.null_fraction:.0%} null", col.null_fraction))
    if col.n_distinct == 1 and col.n_rows > 1:
        flags.append(Flag("constant", name, f"{col.name} holds a single value", 1.0))
    if col.n_inf:
        flags.append(Flag("infinite", name, f"{col.name} has {col.n_inf:,} infinite values", col.n_inf))
    if len(col.python_types) > 1:
        types = ", ".join(col.python_types)
        flags.append(Flag("mixed-types", name, f"{col.name} mixes Python types: {types}", len(col.python_types)))
    if col.n_values >= t.min_rows:
        flags.extend(_shape_flags(col, t))
    return flags


def _shape_flags(col: ColumnSummary, t: Thresholds) -> list[Flag]:
    name = (col.name,)
    flags = []
    if col.kind == NUMERIC and col.skew is not None and abs(col.skew) >= t.skew:
        flags.append(Flag("skewed", name, f"{col.name} is heavily skewed (skew {col.skew:.1f})", col.skew))
    unique = col.n_distinct == col.n_values
    # Unique floats are the norm for measurements; unique integers or strings
    # look like identifiers, which a model should not learn from.
    integral = col.kind == NUMERIC and col.dtype.lower().startswith(("int", "uint"))
    if unique and (integral or col.kind == TEXT):
        flags.append(Flag("id-like", name, f"{col.name} is unique in every row: an identifier?", 1.0))
    elif col.kind in (TEXT, CATEGORICAL) and col.distinct_fraction >= t.near_unique:
        flags.append(
            Flag(
                "near-unique",
                name,
                f"{col.name} has {col.n_distinct:,} distinct values in {col.n_values:,} rows",
                col.distinct_fraction,
            )
        )
    return flags


def correlation_flags(corr: Correlation, t: Thresholds) -> list[Flag]:
    """Pairs of numeric columns so correlated that one restates the other."""
    flags = []
    m = corr.matrix
    rows, cols = np.nonzero(np.triu(np.abs(np.nan_to_num(m)) >= t.correlation, k=1))
    for i, j in zip(rows.tolist(), cols.tolist()):
        a, b, r = corr.columns[i], corr.columns[j], float(m[i, j])
        flags.append(Flag("correlated", (a, b), f"{a} and {b} are highly correlated (r={r:.3f})", r))
    return flags


def duplicate_flag(n_duplicates: int | None, n_rows: int) -> list[Flag]:
    """A flag when some rows repeat an earlier row exactly."""
    if not n_duplicates:
        return []
    share = n_duplicates / n_rows
    return [Flag("duplicate-rows", (), f"{n_duplicates:,} rows ({share:.1%}) repeat an earlier row", share)]
