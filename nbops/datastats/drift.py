"""``drift_table(ref, new)``: how far each column of a new frame moved.

Numbers and datetimes: two-sample Kolmogorov-Smirnov test plus the
population stability index (PSI) on the reference's deciles. Booleans,
categories and strings: chi-square test on the counts of the most frequent
values plus PSI on the same counts. Columns are ranked by PSI, which is
comparable across kinds; p-values say whether a difference is more than noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nbops.datastats.kinds import DATETIME, EMPTY, NAT, NUMERIC, column_kind, datetime_values, float_values, label_codes
from nbops.errors import UsageError

__all__ = ["ColumnDrift", "DriftTable", "drift_table", "psi"]

CATEGORY_LABELS = "labels"
_PSI_FLOOR = 1e-4  # empty bins would make PSI infinite
_OTHER = "(other values)"


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one column; counts are aggregated on a shared support.

    ``edges`` (numbers, datetimes) or ``labels`` (categories) index
    ``reference_counts`` and ``new_counts``.
    """

    name: str
    kind: str  # numeric, datetime, labels, missing, type-changed
    test: str  # "ks", "chi2" or "" when there is nothing to test
    statistic: float
    p_value: float
    psi: float
    drifted: bool
    null_fraction_reference: float
    null_fraction_new: float
    reference_counts: np.ndarray
    new_counts: np.ndarray
    edges: np.ndarray | None = None
    labels: tuple[str, ...] | None = None
    note: str = ""


@dataclass(frozen=True)
class DriftTable:
    """Every shared column's drift, most drifted first."""

    columns: tuple[ColumnDrift, ...]

    def column(self, name: str) -> ColumnDrift:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def drifted(self) -> list[str]:
        """Names of the columns judged drifted, most drifted first."""
        return [c.name for c in self.columns if c.drifted]

    def to_frame(self) -> pd.DataFrame:
        rows = [
            {
                "column": c.name,
                "kind": c.kind,
                "test": c.test,
                "statistic": c.statistic,
                "p-value": c.p_value,
                "PSI": c.psi,
                "null % ref": round(100 * c.null_fraction_reference, 1),
                "null % new": round(100 * c.null_fraction_new, 1),
                "drifted": c.drifted,
                "note": c.note,
            }
            for c in self.columns
        ]
        return pd.DataFrame(rows, columns=list(rows[0]) if rows else None)


def psi(reference_counts: np.ndarray, new_counts: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins.

    Rule of thumb: below 0.1 stable, 0.1 to 0.25 a shift, above 0.25 a
    large shift.
    """
    ref = np.asarray(reference_counts, dtype=np.float64)
    new = np.asarray(new_counts, dtype=np.float64)
    if ref.sum() == 0 or new.sum() == 0:
        return 0.0
    p = np.maximum(ref / ref.sum(), _PSI_FLOOR)
    q = np.maximum(new / new.sum(), _PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def drift_table(
    reference: pd.DataFrame,
    new: pd.DataFrame,
    *,
    bins: int = 30,
    top_k: int = 20,
    alpha: float = 0.05,
    psi_threshold: float = 0.1,
) -> DriftTable:
    """Per-column drift of ``new`` against ``reference``, most drifted first.

    A column is ``drifted`` when its test's p-value is below ``alpha`` and its
    PSI is at least ``psi_threshold``: with a million rows every tiny shift is
    significant, so significance alone would flag everything. A column whose
    kind changed (numbers became strings) or that is missing from ``new``
    ranks first.
    """
    for frame, role in ((reference, "reference_df"), (new, "new_df")):
        if not isinstance(frame, pd.DataFrame):
            raise UsageError(f"{role} must be a pandas DataFrame, not {type(frame).__name__}", "pass DataFrames")
    results = []
    for name in dict.fromkeys(list(reference.columns) + list(new.columns)):
        if name not in new.columns or name not in reference.columns:
            where = "new_df" if name not in new.columns else "reference_df"
            results.append(_structural(str(name), "missing", f"not in {where}"))
            continue
        ref_col, new_col = _first(reference, name), _first(new, name)
        results.append(_column_drift(str(name), ref_col, new_col, bins, top_k, alpha, psi_threshold))
    # Structural changes first, then by PSI, then by p-value.
    results.sort(key=_drift_rank)
    return DriftTable(tuple(results))


def _drift_rank(c: ColumnDrift) -> tuple[bool, float, float]:
    structural = np.isinf(c.psi)
    return (not structural, 0.0 if structural else -c.psi, 0.0 if np.isnan(c.p_value) else c.p_value)


def _first(frame: pd.DataFrame, name: object) -> pd.Series:
    # A repeated column label selects a frame; compare its first column.
    found = frame[name]
    return found.iloc[:, 0] if isinstance(found, pd.DataFrame) else found


def _structural(name: str, kind: str, note: str, ref_null: float = 0.0, new_null: float = 0.0) -> ColumnDrift:
    empty = np.zeros(0, dtype=np.int64)
    return ColumnDrift(name, kind, "", np.nan, np.nan, np.inf, True, ref_null, new_null, empty, empty, note=note)


def _column_drift(name: str, ref: pd.Series, new: pd.Series, bins: int, top_k: int, alpha: float, psi_threshold: float) -> ColumnDrift:
    ref_null, new_null = float(ref.isna().mean()) if len(ref) else 0.0, float(new.isna().mean()) if len(new) else 0.0
    kinds = {column_kind(ref), column_kind(new)} - {EMPTY}
    if len(kinds) > 1:
        note = f"kind changed: {column_kind(ref)} -> {column_kind(new)}"
        return _structural(name, "type-changed", note, ref_null, new_null)
    kind = kinds.pop() if kinds else EMPTY
    if kind in (NUMERIC, DATETIME):
        a, b, edges = _continuous_values(ref, new, kind, bins)
        result = _continuous_drift(a, b, edges)
    elif kind == EMPTY:
        empty = np.zeros(0, dtype=np.int64)
        result = {"test": "", "statistic": np.nan, "p_value": 1.0, "psi": 0.0, "reference_counts": empty, "new_counts": empty, "note": "no values"}
    else:
        kind = CATEGORY_LABELS
        result = _label_drift(ref, new, top_k)
    result["drifted"] = bool(result["p_value"] < alpha and result["psi"] >= psi_threshold)
    return ColumnDrift(name=name, kind=kind, null_fraction_reference=ref_null, null_fraction_new=new_null, **result)


def _continuous_values(ref: pd.Series, new: pd.Series, kind: str, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Finite non-null values of both columns, and shared display bin edges."""
    if kind == DATETIME:
        (a, unit, _), (b, unit_b, _) = datetime_values(ref), datetime_values(new)
        a, b = a[a != NAT], b[b != NAT]
        if unit_b != unit:  # e.g. [us] against [ns]: compare on one scale
            b = (b.astype(f"datetime64[{unit_b}]").astype(f"datetime64[{unit}]")).view(np.int64)
        a, b = a.astype(np.float64), b.astype(np.float64)
    else:
        a, b = float_values(ref), float_values(new)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    extremes = [float(f(x)) for x in (a, b) if len(x) for f in (np.min, np.max)]
    lo, hi = (min(extremes), max(extremes)) if extremes else (0.0, 1.0)
    edges = np.linspace(lo, hi, bins + 1) if hi > lo else np.array([lo - 0.5, hi + 0.5])
    if kind == DATETIME:
        edges = edges.astype(np.int64).astype(f"datetime64[{unit}]")
    return a, b, edges


def _continuous_drift(a: np.ndarray, b: np.ndarray, edges: np.ndarray) -> dict:
    numeric_edges = edges.view(np.int64).astype(np.float64) if edges.dtype.kind == "M" else edges
    ref_counts = np.histogram(a, bins=numeric_edges)[0]
    new_counts = np.histogram(b, bins=numeric_edges)[0]
    if len(a) == 0 or len(b) == 0:
        return {
            "test": "ks",
            "statistic": np.nan,
            "p_value": 1.0,
            "psi": 0.0,
            "reference_counts": ref_counts,
            "new_counts": new_counts,
            "edges": edges,
            "note": "no values on one side",
        }
    from scipy import stats  # imported on use: scipy.stats takes a while to load

    # The exact p-value is slow and, past a few thousand values, fails over to
    # the asymptotic one with a warning; ask for the asymptotic one up front.
    ks = stats.ks_2samp(a, b, method="auto" if max(len(a), len(b)) <= 1000 else "asymp")
    # PSI on the reference's deciles: equal-mass bins, the usual PSI setup.
    cuts = np.unique(np.quantile(a, np.linspace(0, 1, 11))[1:-1])
    psi_value = psi(
        np.bincount(np.searchsorted(cuts, a, side="right"), minlength=len(cuts) + 1),
        np.bincount(np.searchsorted(cuts, b, side="right"), minlength=len(cuts) + 1),
    )
    return {
        "test": "ks",
        "statistic": float(ks.statistic),
        "p_value": float(ks.pvalue),
        "psi": psi_value,
        "reference_counts": ref_counts,
        "new_counts": new_counts,
        "edges": edges,
    }


def _label_drift(ref: pd.Series, new: pd.Series, top_k: int) -> dict:
    """Chi-square on counts of the most frequent labels, the rest pooled."""
    ref_counts = _label_counts(ref)
    new_counts = _label_counts(new)
    table = pd.concat([ref_counts, new_counts], axis=1, keys=["ref", "new"]).fillna(0)
    table = table.sort_values(by=["ref", "new"], ascending=False)
    # Chi-square on hundreds of rare labels is dominated by noise: pool them.
    if len(table) > top_k:
        rest = table.iloc[top_k:].sum()
        table = pd.concat([table.iloc[:top_k], pd.DataFrame([rest], index=[_OTHER])])
    counts = table.to_numpy(dtype=np.float64).T  # 2 x labels
    nonzero = counts.sum(axis=0) > 0
    counts = counts[:, nonzero]
    labels = tuple(str(x) for x in table.index[nonzero])
    result = {"test": "chi2", "reference_counts": counts[0].astype(np.int64), "new_counts": counts[1].astype(np.int64), "labels": labels}
    if counts.shape[1] < 2 or (counts.sum(axis=1) == 0).any():
        return {**result, "statistic": 0.0, "p_value": 1.0, "psi": psi(counts[0], counts[1]), "note": "fewer than two values to compare"}
    from scipy import stats

    chi2, p_value, _, _ = stats.chi2_contingency(counts, correction=False)
    return {**result, "statistic": float(chi2), "p_value": float(p_value), "psi": psi(counts[0], counts[1])}


def _label_counts(series: pd.Series) -> pd.Series:
    codes, uniques = label_codes(series)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    # Labels by display string so True/"True" or 1/1.0 across frames line up.
    return pd.Series(counts, index=[str(u) for u in uniques]).groupby(level=0).sum()
