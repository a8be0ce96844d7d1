"""Data checks: nulls, ranges, categories, row counts, uniqueness, distributions, correlation, balance."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from nbops.errors import MissingExtraError, UsageError
from nbops.runtime.check.result import CheckResult, _columns, _default_name, _finish, _fmt, _frame_column, _plain, _quote, _sample

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def no_nulls(df: pd.DataFrame, columns: str | list[str] | None = None, *, name: str | None = None, warn: bool = False) -> CheckResult:
    """No null (None / NaN / NaT) values in ``columns`` (default: all columns).

    observed: the number of null cells; threshold: 0.
    """
    cols = _columns(df, columns, "no_nulls")
    counts = df[cols].isna().sum()
    bad = {str(c): int(n) for c, n in counts.items() if n}
    total = sum(bad.values())
    where = f" ({_quote(f'{c}: {n}' for c, n in bad.items())})" if bad else ""
    return _finish(
        name or _default_name("no_nulls", columns),
        "data",
        total == 0,
        total,
        0,
        f"observed {total} nulls{where}, threshold 0",
        warn,
    )


def in_range(
    df: pd.DataFrame,
    column: str,
    min: float | None = None,  # noqa: A002 - min=/max= read best at the call site
    max: float | None = None,  # noqa: A002
    *,
    name: str | None = None,
    warn: bool = False,
) -> CheckResult:
    """Every non-null value of ``column`` lies in ``[min, max]`` (bounds inclusive, either optional).

    observed: ``{"min", "max", "outside"}`` — the column's min and max and how
    many values fall outside; threshold: ``{"min", "max"}``.
    """
    if min is None and max is None:
        raise UsageError("in_range: give min=, max= or both", "e.g. nbops.check.in_range(df, 'age', min=0, max=120)")
    values = df[_columns(df, column, "in_range")[0]].dropna()
    n_out = int((values < min).sum() if min is not None else 0) + int((values > max).sum() if max is not None else 0)
    lo, hi = (values.min(), values.max()) if len(values) else (None, None)
    return _finish(
        name or _default_name("in_range", column),
        "data",
        n_out == 0,
        {"min": lo, "max": hi, "outside": n_out},
        {"min": min, "max": max},
        f"observed {n_out} of {len(values)} values outside, min {_fmt(lo)}, max {_fmt(hi)}; threshold [{_fmt(min, '-inf')}, {_fmt(max, 'inf')}]",
        warn,
    )


def allowed_values(df: pd.DataFrame, column: str, values: Iterable[Any], *, name: str | None = None, warn: bool = False) -> CheckResult:
    """Every non-null value of ``column`` is one of ``values``.

    observed: ``{"rows", "unexpected"}`` — how many rows hold another value, and
    up to 20 of those values; threshold: the allowed values.
    """
    allowed = list(values)
    col = df[_columns(df, column, "allowed_values")[0]].dropna()
    bad = col[~col.isin(allowed)]
    unexpected = sorted(bad.unique().tolist(), key=str)
    return _finish(
        name or _default_name("allowed_values", column),
        "data",
        bad.empty,
        {"rows": len(bad), "unexpected": unexpected[:20]},
        allowed,
        f"observed {len(bad)} rows with other values"
        + (f" ({_quote(repr(v) for v in unexpected)})" if unexpected else "")
        + f", threshold one of {_quote(repr(v) for v in allowed)}",
        warn,
    )


def row_count(
    df: pd.DataFrame,
    min: int | None = None,  # noqa: A002
    max: int | None = None,  # noqa: A002
    *,
    name: str | None = None,
    warn: bool = False,
) -> CheckResult:
    """``min <= len(df) <= max`` (either bound optional).

    observed: the row count; threshold: ``{"min", "max"}``.
    """
    if min is None and max is None:
        raise UsageError("row_count: give min=, max= or both", "e.g. nbops.check.row_count(df, min=1000)")
    n = len(df)
    passed = (min is None or n >= min) and (max is None or n <= max)
    return _finish(
        name or "row_count",
        "data",
        passed,
        n,
        {"min": min, "max": max},
        f"observed {n} rows, threshold [{_fmt(min, '0')}, {_fmt(max, 'inf')}]",
        warn,
    )


def unique(df: pd.DataFrame, columns: str | list[str], *, name: str | None = None, warn: bool = False) -> CheckResult:
    """No two rows share the same value(s) of ``columns`` (a key).

    observed: the number of rows repeating an earlier row's key; threshold: 0.
    """
    cols = _columns(df, columns, "unique")
    dup = df.duplicated(subset=cols, keep="first")
    n_dup = int(dup.sum())
    example = ""
    if n_dup:
        key = df.loc[dup, cols].iloc[0].tolist()
        example = f" (e.g. {key[0] if len(key) == 1 else tuple(key)!r})"
    return _finish(
        name or _default_name("unique", columns),
        "data",
        n_dup == 0,
        n_dup,
        0,
        f"observed {n_dup} duplicate keys{example}, threshold 0",
        warn,
    )


def distribution_close(
    data: pd.DataFrame | pd.Series | np.ndarray,
    reference: pd.DataFrame | pd.Series | np.ndarray,
    column: str | None = None,
    *,
    max_ks: float | None = None,
    min_p: float | None = None,
    name: str | None = None,
    warn: bool = False,
) -> CheckResult:
    """``data`` is distributed like ``reference`` by a two-sample Kolmogorov–Smirnov test.

    Frames need ``column`` (unless they have one column); series and arrays
    are used as they are; nulls are dropped. Passes when the KS statistic is at
    most ``max_ks`` and, if given, the p-value is at least ``min_p``. Without
    either, ``max_ks=0.1``: the statistic measures how far apart the
    distributions are, while on large samples the p-value flags even a
    negligible shift.

    observed: ``{"ks", "p_value", "n", "n_reference"}``; threshold: ``{"max_ks", "min_p"}``.
    """
    try:
        from scipy.stats import ks_2samp
    except ImportError:
        raise MissingExtraError("nbops.check.distribution_close", "checks", "scipy") from None
    if max_ks is None and min_p is None:
        max_ks = 0.1
    x = _sample(data, column, "data")
    ref = _sample(reference, column, "reference")
    test = ks_2samp(x, ref)
    ks, p = float(test.statistic), float(test.pvalue)
    passed = (max_ks is None or ks <= max_ks) and (min_p is None or p >= min_p)
    limits = []
    if max_ks is not None:
        limits.append(f"ks <= {_fmt(max_ks)}")
    if min_p is not None:
        limits.append(f"p >= {_fmt(min_p)}")
    return _finish(
        name or _default_name("distribution_close", column),
        "data",
        passed,
        {"ks": ks, "p_value": p, "n": len(x), "n_reference": len(ref)},
        {"max_ks": max_ks, "min_p": min_p},
        f"observed ks {_fmt(ks)}, p {_fmt(p)} (n {len(x)} vs {len(ref)}), threshold {' and '.join(limits)}",
        warn,
    )


def max_correlation(
    df: pd.DataFrame,
    threshold: float = 0.95,
    columns: list[str] | None = None,
    *,
    method: Literal["pearson", "spearman", "kendall"] = "pearson",
    name: str | None = None,
    warn: bool = False,
) -> CheckResult:
    """No two numeric columns correlate more than ``threshold`` in absolute value.

    Catches leaked or duplicated features. Pairs with an undefined correlation
    (a constant column) are skipped.

    observed: ``{"pair": [a, b], "corr"}`` — the most correlated pair and its
    (signed) correlation, or nulls with fewer than two columns; threshold: ``threshold``.
    """
    import numpy as np

    frame = df[_columns(df, columns, "max_correlation")].select_dtypes("number")
    corr = frame.corr(method=method).to_numpy()
    # Upper triangle only: each pair once, never a column with itself.
    upper = np.abs(np.where(np.triu(np.ones_like(corr, dtype=bool), k=1), corr, np.nan))
    if np.isnan(upper).all():
        pair, r = None, None
    else:
        i, j = np.unravel_index(np.nanargmax(upper), upper.shape)
        pair, r = [str(frame.columns[i]), str(frame.columns[j])], float(corr[i, j])
    passed = r is None or abs(r) <= threshold
    worst = f"|{method} r| {_fmt(abs(r))} between {pair[0]!r} and {pair[1]!r}" if pair else "no correlated pair"
    return _finish(
        name or _default_name("max_correlation", columns),
        "data",
        passed,
        {"pair": pair, "corr": r},
        threshold,
        f"observed {worst}, threshold {_fmt(threshold)}",
        warn,
    )


def class_balance(
    y: pd.Series | np.ndarray | list,
    expected: Mapping[Any, float],
    tolerance: float = 0.05,
    *,
    name: str | None = None,
    warn: bool = False,
) -> CheckResult:
    """Each label's share of ``y`` is within ``tolerance`` of ``expected[label]``.

    A label missing from ``expected`` is expected at 0, so an unforeseen class
    fails once it exceeds ``tolerance``. Nulls are dropped.

    observed: ``{label: fraction}`` (labels as strings); threshold:
    ``{"expected": {label: fraction}, "tolerance"}``.
    """
    import pandas as pd

    labels = _frame_column(y, None, "y") if isinstance(y, pd.DataFrame) else pd.Series(y).dropna()
    if labels.empty:
        raise UsageError("class_balance: y has no non-null labels", "check the series passed as y")
    # Plain Python labels, so messages read 1, not np.int64(1).
    shares = {_plain(label): float(share) for label, share in labels.value_counts(normalize=True).items()}
    observed = {label: shares.get(label, 0.0) for label in [*expected, *(s for s in shares if s not in expected)]}
    gaps = {label: abs(share - expected.get(label, 0.0)) for label, share in observed.items()}
    worst = max(gaps, key=gaps.__getitem__)
    return _finish(
        name or "class_balance",
        "data",
        # The epsilon keeps a share exactly at the edge (0.55 vs 0.5 ± 0.05) from failing on float error.
        gaps[worst] <= tolerance + 1e-12,
        observed,
        {"expected": dict(expected), "tolerance": tolerance},
        f"observed {_quote(f'{k!r}: {_fmt(v)}' for k, v in observed.items())}; worst {worst!r} off by {_fmt(gaps[worst])}, threshold ±{_fmt(tolerance)}",
        warn,
    )
