"""``summarize(df)``: everything the explore widget shows, as numbers.

Pure computation (numpy/pandas): no plotting, no widgets, so tests and data
checks can use it directly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nbops.errors import UsageError
from nbops.widgets.columns import ColumnProfile, profile_column
from nbops.widgets.flags import column_flags, correlation_flags, duplicate_flag
from nbops.widgets.stats import NUMERIC, Correlation, FrameSummary, Thresholds

__all__ = ["FrameSummary", "Thresholds", "summarize"]


def summarize(
    df: pd.DataFrame | pd.Series,
    *,
    bins: int = 30,
    top_k: int = 20,
    sample_rows: int = 100_000,
    seed: int = 0,
    thresholds: Thresholds | None = None,
) -> FrameSummary:
    """Summarize a frame: overview, per-column distributions, correlations, flags.

    Every column is read in full, except the correlation matrix, which is
    computed on a seeded random sample of ``sample_rows`` rows when the frame
    is longer (the summary's ``notes`` then say so). Duplicate rows are
    counted by a 64-bit hash of each row.

    >>> summarize(pd.DataFrame({"x": [1, 2, 2]})).column("x").n_distinct
    2
    """
    if isinstance(df, pd.Series):
        df = df.to_frame()
    if not isinstance(df, pd.DataFrame):
        raise UsageError(
            f"summarize() takes a pandas DataFrame, not {type(df).__name__}",
            "pass a DataFrame, e.g. pd.DataFrame(data)",
        )
    if bins < 1 or top_k < 1 or sample_rows < 2:
        raise UsageError("bins, top_k and sample_rows must be positive", "e.g. bins=30, top_k=20")
    t = thresholds or Thresholds()

    profiles = [
        profile_column(df.iloc[:, i], str(label), bins=bins, top_k=top_k)
        for i, label in enumerate(df.columns)
    ]
    columns = tuple(p.summary for p in profiles)
    correlation, notes = _correlation(profiles, len(df), sample_rows, seed)
    n_duplicates = _count_duplicate_rows(profiles, len(df))

    flags = [f for col in columns for f in column_flags(col, t)]
    flags += correlation_flags(correlation, t)
    flags += duplicate_flag(n_duplicates, len(df))
    return FrameSummary(
        n_rows=len(df),
        n_columns=df.shape[1],
        # Column sizes were measured already; deep=True again would re-walk object columns.
        memory_bytes=sum(c.memory_bytes for c in columns) + int(df.index.memory_usage(deep=True)),
        n_duplicate_rows=n_duplicates,
        columns=columns,
        correlation=correlation,
        flags=tuple(flags),
        notes=tuple(notes),
    )


def _count_duplicate_rows(profiles: list[ColumnProfile], n_rows: int) -> int | None:
    if not profiles or n_rows < 2:
        return 0
    # Tuple-hash combine (the recipe pandas' hash_pandas_object uses for rows).
    out = np.full(n_rows, 0x345678, dtype=np.uint64)
    mult = np.uint64(1000003)
    for i, p in enumerate(profiles):
        out ^= p.row_hash
        out *= mult
        mult += np.uint64(82520 + 2 * (len(profiles) - i))
    out += np.uint64(97531)
    return int(pd.Series(out).duplicated().sum())


def _correlation(
    profiles: list[ColumnProfile], n_rows: int, sample_rows: int, seed: int
) -> tuple[Correlation, list[str]]:
    numeric = [
        p for p in profiles if p.floats is not None and p.summary.kind == NUMERIC and p.summary.n_distinct > 1
    ]
    notes = []
    if n_rows > sample_rows:
        rows = np.sort(np.random.default_rng(seed).choice(n_rows, sample_rows, replace=False))
        notes.append(f"correlations use a random sample of {sample_rows:,} of {n_rows:,} rows (seed {seed})")
    else:
        rows = slice(None)
    names, arrays = [], []
    for p in numeric:
        values = p.floats[rows]
        if p.summary.n_inf:
            values = np.where(np.isinf(values), np.nan, values)
        names.append(p.summary.name)
        arrays.append(values)
    if not names:
        return Correlation((), np.empty((0, 0)), 0), notes
    # pandas handles nulls pairwise; positional columns because names may repeat.
    matrix = pd.DataFrame(np.column_stack(arrays)).corr(min_periods=3).to_numpy()
    used = len(arrays[0])
    return Correlation(tuple(names), matrix, used), notes
