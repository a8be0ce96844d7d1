"""Summarize one column with vectorized numpy, one pass per statistic.

Each profiler also returns a per-row hash of the column (equal values, equal
hashes) so the frame can count duplicate rows without hashing its strings
twice, and numeric columns hand back their float values for correlations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nbops.widgets.column_kinds import NAT, column_kind, datetime_values, float_values, label_codes
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
    floats: np.ndarray | None = None  # numeric columns: float64 values, NaN for null


def profile_column(series: pd.Series, name: str, *, bins: int, top_k: int) -> ColumnProfile:
    """Summarize ``series``; see :class:`~nbops.widgets.stats.ColumnSummary`."""
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
        return _profile_numeric(series, base, bins)
    if kind == DATETIME:
        return _profile_datetime(series, base, bins)
    return _profile_labels(series, base, top_k)


def _hash(keys: np.ndarray, null: np.ndarray | None) -> np.ndarray:
    hashed = pd.util.hash_array(keys)
    if null is not None:
        hashed[null] = _NULL_HASH
    return hashed


def _profile_numeric(series: pd.Series, base: dict, bins: int) -> ColumnProfile:
    values = float_values(series)
    finite_mask = np.isfinite(values)
    n_finite = int(np.count_nonzero(finite_mask))
    null = np.isnan(values)
    n_inf = len(values) - n_finite - int(np.count_nonzero(null))
    finite = values if n_finite == len(values) else values[finite_mask]

    if series.dtype.kind in "iu":
        # Integers hash exactly as themselves (floats would round above 2**53).
        keys = series.to_numpy()
        row_hash = _hash(keys.astype(np.int64, copy=False), None)
        n_distinct = _count_distinct_ints(keys.astype(np.int64, copy=False))
    else:
        # +0.0 folds -0.0 into 0.0; NaN bit patterns are replaced by the null hash.
        bits = (values + 0.0).view(np.int64)
        has_null = bool(null.any())
        row_hash = _hash(bits, null if has_null else None)
        n_distinct = _count_distinct_floats(bits, finite, null if has_null else None)

    stats: dict = {"n_inf": n_inf, "n_distinct": n_distinct}
    if n_finite:
        stats.update(_moments(finite))
        lo, hi = float(finite.min()), float(finite.max())
        stats.update(
            minimum=lo,
            maximum=hi,
            quantiles=dict(zip((f"{q:g}" for q in QUANTILES), np.quantile(finite, QUANTILES).tolist())),
            histogram=_numeric_histogram(finite, lo, hi, bins),
        )
    return ColumnProfile(ColumnSummary(**base, **stats), row_hash, values)


def _count_distinct_ints(keys: np.ndarray) -> int:
    if len(keys) == 0:
        return 0
    lo, hi = int(keys.min()), int(keys.max())
    # A dense range counts with bincount in O(n); a sparse one needs a hash table.
    if hi - lo <= 4 * len(keys):
        return int(np.count_nonzero(np.bincount(keys - lo)))
    return int(pd.Series(keys).nunique())


def _count_distinct_floats(bits: np.ndarray, finite: np.ndarray, null: np.ndarray | None) -> int:
    present = bits if null is None else bits[~null]
    if len(finite) == len(present) and len(finite):
        lo, hi = finite.min(), finite.max()
        if hi - lo <= 4 * len(finite) and np.array_equal(finite, np.floor(finite)):
            return _count_distinct_ints(finite.astype(np.int64))
    # Equal floats have equal bits (after folding -0.0), and an int64 hash table
    # is about twice as fast as pandas' float one.
    return int(pd.Series(present).nunique())


def _moments(finite: np.ndarray) -> dict:
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
        skew = m3 / m2**1.5 * np.sqrt(n * (n - 1)) / (n - 2)
    return {"mean": mean, "std": std, "skew": skew}


def _numeric_histogram(finite: np.ndarray, lo: float, hi: float, bins: int) -> Histogram | None:
    if not np.isfinite(hi - lo):
        return None  # values near ±1.8e308: the bin width itself overflows
    if hi - lo < bins and np.array_equal(finite, np.floor(finite)):
        # Few integer values: one bar per integer instead of aliased bins.
        edges = np.arange(lo - 0.5, hi + 1.0, 1.0)
        counts = np.bincount((finite - lo).astype(np.int64), minlength=len(edges) - 1)
        return Histogram(edges, counts.astype(np.int64))
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(finite, bins=bins, range=(lo, hi))
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
            minimum=str(np.datetime64(lo, unit)),
            maximum=str(np.datetime64(hi, unit)),
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
        stats["python_types"] = _python_types(uniques[:10_000])  # type per distinct value: cheap
    return ColumnProfile(ColumnSummary(**base, **stats), _hash(codes.astype(np.int64), None))


def _label(value: object) -> str:
    text = str(value)
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def _python_types(values: np.ndarray) -> tuple[str, ...]:
    return tuple(sorted({type(v).__name__ for v in values}))
