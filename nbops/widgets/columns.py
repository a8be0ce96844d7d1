"""Summarize one column with vectorized numpy, one pass per statistic.

Each profiler also returns a per-row hash of the column (equal values, equal
hashes) so the frame can count duplicate rows without hashing its strings
twice, and numeric columns hand back the sampled rows the correlation uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nbops.datastats.kinds import NAT, column_kind, datetime_values, float_values, label_codes
from nbops.widgets.stats import DATETIME, EMPTY, NUMERIC, ColumnSummary, Histogram, TopValues

__all__ = ["ColumnProfile", "profile_column"]

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
# Any fixed value that hash_array is unlikely to produce for a real value.
_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)
_LABEL_CHARS = 80


@dataclass(frozen=True)
class ColumnProfile:
    """A column's summary plus what the frame-level passes need from it."""

    summary: ColumnSummary
    row_hash: np.ndarray  # uint64 per row
    sample: np.ndarray | None = None  # numeric columns: float64 at the sampled rows, NaN for null/inf


def profile_column(series: pd.Series, name: str, *, bins: int, top_k: int, sample_rows: np.ndarray | slice = slice(None)) -> ColumnProfile:
    """Summarize ``series``; see :class:`~nbops.widgets.stats.ColumnSummary`.

    ``sample_rows`` picks the rows a numeric column hands back for correlations.
    """
    n_null = int(series.isna().sum())
    kind = column_kind(series, n_null)
    base = {
        "name": name,
        "dtype": str(series.dtype),
        "kind": kind,
        "n_rows": len(series),
        "n_null": n_null,
        "memory_bytes": int(series.memory_usage(deep=True, index=False)),
    }
    if kind == EMPTY:
        return ColumnProfile(ColumnSummary(n_distinct=0, **base), np.full(len(series), _NULL_HASH))
    if kind == NUMERIC:
        return _profile_numeric(series, base, bins, sample_rows)
    if kind == DATETIME:
        return _profile_datetime(series, base, bins)
    return _profile_labels(series, base, top_k)


def _hash(keys: np.ndarray, null: np.ndarray | None) -> np.ndarray:
    hashed = pd.util.hash_array(keys)
    if null is not None:
        hashed[null] = _NULL_HASH
    return hashed


def _profile_numeric(series: pd.Series, base: dict, bins: int, sample_rows: np.ndarray | slice) -> ColumnProfile:
    values = float_values(series)
    null = np.isnan(values)
    has_null = bool(base["n_null"])
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iu":
        # Integers hash exactly as themselves (floats would round above 2**53).
        row_hash = _hash(series.to_numpy().astype(np.int64, copy=False), None)
    else:
        # +0.0 folds -0.0 into 0.0; NaN bit patterns get the null hash.
        row_hash = _hash((values + 0.0).view(np.int64), null if has_null else None)

    finite_mask = np.isfinite(values)
    n_finite = int(np.count_nonzero(finite_mask))
    finite = values if n_finite == len(values) else values[finite_mask]
    n_inf = len(values) - n_finite - int(np.count_nonzero(null))
    infinities = int(np.isposinf(values).any()) + int(np.isneginf(values).any()) if n_inf else 0
    stats: dict = {"n_inf": n_inf, "n_distinct": infinities}
    if n_finite:
        lo, hi = float(finite.min()), float(finite.max())
        order = _order(finite, lo, hi)
        stats.update(_moments(finite))
        stats.update(
            n_distinct=order.n_distinct + infinities,
            minimum=lo,
            maximum=hi,
            quantiles=dict(zip((f"{q:g}" for q in QUANTILES), _quantiles(order, n_finite, QUANTILES))),
            histogram=_numeric_histogram(order, n_finite, lo, hi, bins),
        )
    sample = values[sample_rows]
    if n_inf:
        sample = np.where(np.isinf(sample), np.nan, sample)
    return ColumnProfile(ColumnSummary(**base, **stats), row_hash, sample)


class _Sorted:
    """Order statistics from the sorted values.

    One sort gives the exact distinct count, the quantiles and the histogram:
    cheaper than a hash table for the distinct values plus a partition for
    the quantiles.
    """

    def __init__(self, finite: np.ndarray):
        self.ordered = np.sort(finite)
        self.n_distinct = int(np.count_nonzero(self.ordered[1:] != self.ordered[:-1])) + 1

    def count_below(self, edges: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.ordered, edges, side="left")

    def value_at(self, ranks: np.ndarray) -> np.ndarray:
        return self.ordered[ranks]


class _IntegerCounts:
    """Order statistics from a count per integer: O(n), where a sort is O(n log n)."""

    def __init__(self, finite: np.ndarray, lo: float):
        self.lo = lo
        counts = np.bincount((finite - lo).astype(np.int64))
        self.n_distinct = int(np.count_nonzero(counts))
        self.cumulative = np.concatenate(([0], np.cumsum(counts)))

    def count_below(self, edges: np.ndarray) -> np.ndarray:
        # Integer v < edge  <=>  v - lo < ceil(edge - lo).
        offsets = np.clip(np.ceil(edges - self.lo), 0, len(self.cumulative) - 1).astype(np.int64)
        return self.cumulative[offsets]

    def value_at(self, ranks: np.ndarray) -> np.ndarray:
        return self.lo + np.searchsorted(self.cumulative[1:], ranks, side="right").astype(np.float64)


def _order(finite: np.ndarray, lo: float, hi: float) -> _Sorted | _IntegerCounts:
    # Counts (ids, small counts, 0/1 flags) take a count array of at most 4 slots per value.
    if hi - lo <= 4 * len(finite) and np.array_equal(finite, np.floor(finite)):
        return _IntegerCounts(finite, lo)
    return _Sorted(finite)


def _quantiles(order: _Sorted | _IntegerCounts, n: int, qs: tuple[float, ...]) -> list[float]:
    """Linear-interpolated quantiles (numpy's default method)."""
    position = np.asarray(qs) * (n - 1)
    below = np.floor(position).astype(np.int64)
    low, high = order.value_at(below), order.value_at(np.minimum(below + 1, n - 1))
    with np.errstate(over="ignore", invalid="ignore"):  # high - low may overflow near ±1.8e308
        values = low + (high - low) * (position - below)
    return np.where(np.isfinite(values), values, low).tolist()


def _moments(finite: np.ndarray) -> dict:
    with np.errstate(over="ignore", invalid="ignore"):  # values near ±1.8e308
        moments = _raw_moments(finite)
    return {k: (v if v is not None and np.isfinite(v) else None) for k, v in moments.items()}


def _raw_moments(finite: np.ndarray) -> dict:
    n = len(finite)
    mean = float(finite.mean())
    dev = finite - mean
    sq = dev * dev
    m2 = float(sq.mean())
    std = float(np.sqrt(m2 * n / (n - 1))) if n > 1 else None
    skew = None
    if n > 2 and m2 > 0:
        m3 = float((sq * dev).mean())
        # Adjusted Fisher-Pearson G1, the estimator pandas' .skew() uses.
        skew = float(m3 / m2**1.5 * np.sqrt(n * (n - 1)) / (n - 2))
    return {"mean": mean, "std": std, "skew": skew}


def _numeric_histogram(order: _Sorted | _IntegerCounts, n: int, lo: float, hi: float, bins: int) -> Histogram | None:
    """Bin counts from the order statistics: one rank lookup per edge."""
    if not np.isfinite(hi - lo):
        return None  # values near ±1.8e308: the bin width itself overflows
    if hi - lo < bins and isinstance(order, _IntegerCounts):
        # Few integer values: one bar per integer instead of aliased bins.
        edges = np.arange(lo - 0.5, hi + 1.0, 1.0)
    elif lo == hi:
        edges = np.array([lo - 0.5, hi + 0.5])
    else:
        edges = np.linspace(lo, hi, bins + 1)
    # Left-closed bins, the last one closed on both sides, as np.histogram.
    counts = np.diff(np.append(order.count_below(edges[:-1]), n))
    return Histogram(edges, counts.astype(np.int64))


def _profile_datetime(series: pd.Series, base: dict, bins: int) -> ColumnProfile:
    ticks, unit, tz = datetime_values(series)
    null = ticks == NAT
    present = ticks[~null] if base["n_null"] else ticks
    row_hash = _hash(ticks, null if base["n_null"] else None)
    stats: dict = {"n_distinct": int(pd.Series(present).nunique()), "timezone": tz}
    if len(present):
        lo, hi = int(present.min()), int(present.max())
        if lo == hi:
            edges = np.array([lo, hi + 1], dtype=np.int64)
            counts = np.array([len(present)], dtype=np.int64)
        else:
            counts, float_edges = np.histogram(present, bins=bins, range=(lo, hi))
            edges = float_edges.astype(np.int64)
        as_time = edges.astype(f"datetime64[{unit}]")
        stats.update(
            minimum=str(pd.Timestamp(np.datetime64(lo, unit))),
            maximum=str(pd.Timestamp(np.datetime64(hi, unit))),
            histogram=Histogram(as_time, counts.astype(np.int64)),
        )
    return ColumnProfile(ColumnSummary(**base, **stats), row_hash)


def _profile_labels(series: pd.Series, base: dict, top_k: int) -> ColumnProfile:
    """Booleans, categoricals and strings: counts per distinct value."""
    codes, uniques = label_codes(series)
    null = codes < 0
    has_null = bool(base["n_null"])
    counts = np.bincount(codes[~null] if has_null else codes, minlength=len(uniques))
    n_distinct = int(np.count_nonzero(counts))
    k = min(top_k, n_distinct)
    if k < len(counts):
        candidates = np.argpartition(counts, len(counts) - k)[len(counts) - k :]
    else:
        candidates = np.arange(len(counts))
    # Most frequent first; ties keep first-appearance order.
    order = candidates[np.argsort(-counts[candidates], kind="stable")][:k]
    top_counts = counts[order].astype(np.int64)
    top = TopValues(
        labels=tuple(_label(v) for v in uniques.take(order)),
        counts=top_counts,
        other_count=int(base["n_rows"] - base["n_null"] - top_counts.sum()),
    )
    stats: dict = {"n_distinct": n_distinct, "top": top}
    if series.dtype == object:
        stats["python_types"] = _python_types(series, codes)
    return ColumnProfile(ColumnSummary(**base, **stats), _hash(codes.astype(np.int64), None))


def _label(value: object) -> str:
    text = str(value)
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def _python_types(series: pd.Series, codes: np.ndarray, limit: int = 10_000) -> tuple[str, ...]:
    """Python types of an object column, read from one row per distinct value.

    Codes are numbered in order of first appearance, so the rows where the
    running maximum code grows are the first row of each distinct value.
    """
    if len(codes) == 0:
        return ()
    running = np.maximum.accumulate(codes)
    firsts = np.flatnonzero(np.concatenate(([codes[0] >= 0], running[1:] > running[:-1])))
    return tuple(sorted({type(v).__name__ for v in series.iloc[firsts[:limit]]}))
