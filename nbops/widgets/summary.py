"""``summarize(df)``: everything the explore widget shows, as numbers.

Pure computation (numpy/pandas): no plotting, no widgets, so tests and data
checks can use it directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from nbops.errors import UsageError
from nbops.widgets.columns import ColumnProfile, profile_column
from nbops.widgets.flags import column_flags, correlation_flags, duplicate_flag
from nbops.widgets.stats import NUMERIC, ColumnSummary, Correlation, FrameSummary, Thresholds

__all__ = ["FrameSummary", "Thresholds", "summarize"]


def summarize(
    df: pd.DataFrame | pd.Series,
    *,
    bins: int = 30,
    top_k: int = 20,
    sample_rows: int = 100_000,
    seed: int = 0,
    thresholds: Thresholds | None = None,
    workers: int | None = None,
) -> FrameSummary:
    """Summarize a frame: overview, per-column distributions, correlations, flags.

    Every column is read in full, except the correlation matrix, which is
    computed on a seeded random sample of ``sample_rows`` rows when the frame
    is longer (the summary's ``notes`` then say so). Duplicate rows are
    counted by a 64-bit hash of each row. Columns are profiled on ``workers``
    threads (default: up to 4, one per CPU); numpy's sorts and pandas' hash
    tables release the GIL, so threads overlap.

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
    if bins < 1 or top_k < 1 or sample_rows < 2 or (workers is not None and workers < 1):
        raise UsageError("bins, top_k, sample_rows and workers must be positive", "e.g. bins=30, top_k=20")
    t = thresholds or Thresholds()
    n_rows = len(df)
    sampled = n_rows > sample_rows
    rows = np.sort(np.random.default_rng(seed).choice(n_rows, sample_rows, replace=False)) if sampled else slice(None)

    hasher = _DuplicateCounter(n_rows, df.shape[1])
    columns: list[ColumnSummary] = []
    samples: list[tuple[str, np.ndarray]] = []
    for profile in _profiles(df, bins, top_k, rows, workers):
        col = profile.summary
        columns.append(col)
        hasher.add(profile.row_hash, unique=col.n_distinct == n_rows and n_rows > 1)
        if profile.sample is not None and col.kind == NUMERIC and col.n_distinct > 1:
            samples.append((col.name, profile.sample))

    correlation = _correlation(samples, sample_rows if sampled else n_rows)
    notes = [f"correlations use a random sample of {sample_rows:,} of {n_rows:,} rows (seed {seed})"] if sampled else []
    n_duplicates = hasher.count()
    flags = [f for col in columns for f in column_flags(col, t)]
    flags += correlation_flags(correlation, t)
    flags += duplicate_flag(n_duplicates, n_rows)
    return FrameSummary(
        n_rows=n_rows,
        n_columns=df.shape[1],
        # Column sizes were measured already; deep=True again would re-walk object columns.
        memory_bytes=sum(c.memory_bytes for c in columns) + int(df.index.memory_usage(deep=True)),
        n_duplicate_rows=n_duplicates,
        columns=tuple(columns),
        correlation=correlation,
        flags=tuple(flags),
        notes=tuple(notes),
    )


def _profiles(df: pd.DataFrame, bins: int, top_k: int, rows: np.ndarray | slice, workers: int | None) -> Iterator[ColumnProfile]:
    """Column profiles in column order, computed on a few threads."""
    # Series are taken out here: pandas objects are not meant to be indexed from threads.
    series = [(df.iloc[:, i], str(label)) for i, label in enumerate(df.columns)]

    def profile(item: tuple[pd.Series, str]) -> ColumnProfile:
        return profile_column(item[0], item[1], bins=bins, top_k=top_k, sample_rows=rows)

    n = min(workers or min(4, _cpus()), len(series))
    if n <= 1:
        yield from map(profile, series)
        return
    with ThreadPoolExecutor(n, thread_name_prefix="nbops-summarize") as pool:
        yield from pool.map(profile, series)


def _cpus() -> int:
    # The CPUs this process may run on (a container's share), not the host's.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class _DuplicateCounter:
    """Folds column hashes into row hashes, in column order, then counts repeats."""

    def __init__(self, n_rows: int, n_columns: int):
        self.n_rows, self.n_columns = n_rows, n_columns
        self.index = 0
        # Tuple-hash combine (the recipe pandas' hash_pandas_object uses for rows).
        self.out = np.full(n_rows, 0x345678, dtype=np.uint64)
        self.mult = np.uint64(1000003)
        self.no_repeats = n_rows < 2 or n_columns == 0

    def add(self, column_hash: np.ndarray, *, unique: bool) -> None:
        # A column with a distinct value in every row rules out repeated rows.
        self.no_repeats = self.no_repeats or unique
        if self.no_repeats:
            return
        self.out ^= column_hash
        self.out *= self.mult
        self.mult += np.uint64(82520 + 2 * (self.n_columns - self.index))
        self.index += 1

    def count(self) -> int:
        if self.no_repeats:
            return 0
        return int(pd.Series(self.out + np.uint64(97531)).duplicated().sum())


def _correlation(samples: list[tuple[str, np.ndarray]], used: int) -> Correlation:
    if not samples:
        return Correlation((), np.empty((0, 0)), 0)
    # pandas handles nulls pairwise; positional columns because names may repeat.
    matrix = pd.DataFrame(np.column_stack([s for _, s in samples])).corr(min_periods=3).to_numpy()
    return Correlation(tuple(name for name, _ in samples), matrix, used)
