"""Data and model checks, one line each in a stage cell: ``nbops.check.no_nulls(df)``.

A check measures one thing, compares it with a threshold, and then:

- in a run (``nbops.runtime.context.current()`` is set) appends a record to the
  stage's ``checks`` records, which the driver copies into the run store;
- prints one line, e.g. ``nbops check no_nulls[age]: PASS observed 0 nulls, threshold 0``
  (in a run it lands in the executed notebook; outside one it is the whole effect);
- returns a ``CheckResult``;
- raises ``CheckFailed`` (an ``AssertionError``) when it fails, unless it was
  called with ``warn=True``: then the failure is recorded and printed only.

The record, read as-is by the run store, ``nbops runs show`` and JUnit XML output::

    {
      "name":      str,           # e.g. "no_nulls[age,income]"; the ``name=`` argument when given
      "kind":      "data" | "model",
      "stage":     str | None,    # the running stage; None outside a run
      "passed":    bool,
      "observed":  JSON value,    # a number when the check measures one number, else a
                                  # small dict (documented on each check)
      "threshold": JSON value,    # likewise
      "message":   str,           # one human line with observed and threshold
      "warn":      bool,          # the check ran in warn mode: a failure does not fail the stage
    }

Its status is ``PASS`` if ``passed``, else ``WARN`` if ``warn``, else ``FAIL``
(``check_status``); ``summarize_checks`` counts them.

Argument mistakes (an unknown column, an unfitted model) raise ``UsageError``,
not ``CheckFailed``: they are bugs in the cell, not findings about the data.
Nulls are ``no_nulls``'s business: the other data checks ignore them.

scipy and scikit-learn (``pip install 'nbops[checks]'``) are imported only by the
checks that use them, so ``import nbops`` stays quick in every stage kernel.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from nbops.errors import MissingExtraError, UsageError
from nbops.runtime.context import _jsonable, current

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "CheckFailed",
    "CheckResult",
    "allowed_values",
    "better_than_baseline",
    "check_status",
    "class_balance",
    "distribution_close",
    "in_range",
    "max_correlation",
    "metric_at_least",
    "metric_at_most",
    "no_nulls",
    "prediction_latency",
    "row_count",
    "summarize_checks",
    "unique",
]

Kind = Literal["data", "model"]

# How many offending values or keys a message quotes before "...".
_QUOTE = 5


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check; ``to_record()`` is the stored record."""

    name: str
    kind: Kind
    stage: str | None
    passed: bool
    observed: Any
    threshold: Any
    message: str
    warn: bool

    @property
    def status(self) -> str:
        """``PASS``, ``WARN`` (failed in warn mode) or ``FAIL``."""
        return check_status(self.to_record())

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


class CheckFailed(AssertionError):
    """A check did not pass; ``result`` holds what it observed."""

    def __init__(self, message: str, result: CheckResult | None = None):
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple:
        # Keep ``result`` when the error crosses a process boundary (Ray workers).
        return (type(self), (str(self), self.result))


def check_status(record: Mapping[str, Any]) -> str:
    """``PASS``, ``WARN`` or ``FAIL`` for a check record."""
    if record.get("passed"):
        return "PASS"
    return "WARN" if record.get("warn") else "FAIL"


def summarize_checks(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts of check records by status, and the names that failed or warned.

    ``failed`` counts only failures that fail a stage; a failure in warn mode
    counts as ``warned``.
    """
    summary: dict[str, Any] = {"total": 0, "passed": 0, "failed": 0, "warned": 0, "failed_names": [], "warned_names": []}
    for record in records:
        summary["total"] += 1
        status = check_status(record)
        if status == "PASS":
            summary["passed"] += 1
        elif status == "WARN":
            summary["warned"] += 1
            summary["warned_names"].append(record.get("name"))
        else:
            summary["failed"] += 1
            summary["failed_names"].append(record.get("name"))
    return summary


# --------------------------------------------------------------------------- data checks


def no_nulls(
    df: pd.DataFrame, columns: str | list[str] | None = None, *, name: str | None = None, warn: bool = False
) -> CheckResult:
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
        f"observed {n_out} of {len(values)} values outside, min {_fmt(lo)}, max {_fmt(hi)}; "
        f"threshold [{_fmt(min, '-inf')}, {_fmt(max, 'inf')}]",
        warn,
    )


def allowed_values(
    df: pd.DataFrame, column: str, values: Iterable[Any], *, name: str | None = None, warn: bool = False
) -> CheckResult:
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
        f"observed {_quote(f'{k!r}: {_fmt(v)}' for k, v in observed.items())}; "
        f"worst {worst!r} off by {_fmt(gaps[worst])}, threshold ±{_fmt(tolerance)}",
        warn,
    )


# --------------------------------------------------------------------------- model checks


def metric_at_least(metric: str, value: float, threshold: float, *, name: str | None = None, warn: bool = False) -> CheckResult:
    """``value >= threshold`` for a score where higher is better: ``metric_at_least("accuracy", acc, 0.8)``.

    observed: the value; threshold: ``threshold``. A NaN value fails.
    """
    return _metric_bound(metric, value, threshold, ">=", name, warn)


def metric_at_most(metric: str, value: float, threshold: float, *, name: str | None = None, warn: bool = False) -> CheckResult:
    """``value <= threshold`` for a loss, an error or a latency: ``metric_at_most("rmse", rmse, 3.5)``.

    observed: the value; threshold: ``threshold``. A NaN value fails.
    """
    return _metric_bound(metric, value, threshold, "<=", name, warn)


def better_than_baseline(
    model: Any,
    X_train: Any,
    y_train: Any,
    X_test: Any,
    y_test: Any,
    metric: str | Callable[[Any, Any], float] | None = None,
    margin: float = 0.0,
    *,
    name: str | None = None,
    warn: bool = False,
) -> CheckResult:
    """The fitted ``model`` scores at least ``margin`` above a dummy baseline on the test split.

    The baseline is scikit-learn's ``DummyClassifier(strategy="most_frequent")``
    for a classifier, else ``DummyRegressor(strategy="mean")``, fitted on
    ``X_train, y_train``; ``model`` is used as it is, not refitted. ``metric``
    is a scikit-learn scorer name (``"f1_macro"``, ``"neg_mean_absolute_error"``)
    or a function ``metric(y_true, y_pred)``; either way higher must be better.
    Default: accuracy for a classifier, r2 for a regressor.

    observed: ``{"metric", "score", "baseline"}``; threshold: ``baseline + margin``.
    """
    try:
        from sklearn.base import is_classifier
        from sklearn.dummy import DummyClassifier, DummyRegressor
        from sklearn.exceptions import NotFittedError
        from sklearn.metrics import get_scorer
        from sklearn.utils.validation import check_is_fitted
    except ImportError:
        raise MissingExtraError("nbops.check.better_than_baseline", "checks", "scikit-learn") from None

    classifier = is_classifier(model)
    if metric is None:
        metric = "accuracy" if classifier else "r2"
    if isinstance(metric, str):
        try:
            # Scorer names are what sklearn users already know (cross_val_score).
            scorer = get_scorer(metric)
        except ValueError as e:
            raise UsageError(
                f"better_than_baseline: unknown metric {metric!r}", "use a name from sklearn.metrics.get_scorer_names()"
            ) from e
        metric_name = metric

        def score(estimator: Any) -> float:
            return float(scorer(estimator, X_test, y_test))

    else:
        fn = metric
        metric_name = getattr(fn, "__name__", "metric")

        def score(estimator: Any) -> float:
            return float(fn(y_test, estimator.predict(X_test)))

    try:
        check_is_fitted(model)
    except NotFittedError as e:
        raise UsageError("better_than_baseline: the model is not fitted", "fit it on X_train, y_train before the check") from e
    except TypeError:
        pass  # not a scikit-learn estimator (a wrapper with .predict): let scoring tell
    baseline = DummyClassifier(strategy="most_frequent") if classifier else DummyRegressor(strategy="mean")
    baseline.fit(X_train, y_train)
    model_score, base_score = score(model), score(baseline)
    bar = base_score + margin
    return _finish(
        name or f"better_than_baseline[{metric_name}]",
        "model",
        model_score >= bar,
        {"metric": metric_name, "score": model_score, "baseline": base_score},
        bar,
        f"observed {metric_name} {_fmt(model_score)} vs {baseline.__class__.__name__} {_fmt(base_score)}, "
        f"threshold {_fmt(bar)} (baseline + {_fmt(margin)})",
        warn,
    )


def prediction_latency(
    model_or_fn: Any,
    X: Any,
    max_ms: float,
    n: int = 20,
    batch: int | None = 1,
    *,
    name: str | None = None,
    warn: bool = False,
) -> CheckResult:
    """The median time of one prediction call on ``batch`` rows of ``X`` is at most ``max_ms``.

    Calls ``model_or_fn.predict`` when it has one, else ``model_or_fn`` itself;
    ``batch=None`` predicts all of ``X`` per call. One untimed warm-up call
    comes first (lazy initialisation, caches), then ``n`` timed calls; the
    median ignores the odd slow call from a busy machine.

    observed: the median in milliseconds; threshold: ``max_ms``.
    """
    if n < 1:
        raise UsageError("prediction_latency: n must be at least 1", "e.g. n=20")
    predict = getattr(model_or_fn, "predict", model_or_fn)
    if not callable(predict):
        raise UsageError("prediction_latency: expected a model with .predict or a function", "pass model or model.predict")
    rows = X if batch is None else (X.iloc[:batch] if hasattr(X, "iloc") else X[:batch])
    predict(rows)
    times_ms = []
    for _ in range(n):
        start = time.perf_counter()
        predict(rows)
        times_ms.append((time.perf_counter() - start) * 1000)
    median = statistics.median(times_ms)
    size = "all" if batch is None else batch
    return _finish(
        name or "prediction_latency",
        "model",
        median <= max_ms,
        median,
        max_ms,
        f"observed median {_fmt(median)} ms per call (batch {size}, {n} calls, slowest {_fmt(max(times_ms))} ms), "
        f"threshold {_fmt(max_ms)} ms",
        warn,
    )


# --------------------------------------------------------------------------- helpers


def _finish(name: str, kind: Kind, passed: bool, observed: Any, threshold: Any, message: str, warn: bool) -> CheckResult:
    """Record, print, return; raise when the check failed outside warn mode."""
    ctx = current()
    result = CheckResult(
        name=name,
        kind=kind,
        stage=ctx.stage if ctx else None,
        passed=bool(passed),
        observed=_jsonable(observed),
        threshold=_jsonable(threshold),
        message=message,
        warn=bool(warn),
    )
    if ctx is not None:
        ctx.record("checks", result.to_record())
    print(f"nbops check {name}: {result.status} {message}")
    if not result.passed and not warn:
        raise CheckFailed(f"check {name} failed: {message}", result)
    return result


def _metric_bound(
    metric: str, value: float, threshold: float, op: Literal[">=", "<="], name: str | None, warn: bool
) -> CheckResult:
    check = f"metric_at_{'least' if op == '>=' else 'most'}"
    if not isinstance(metric, str) or not metric:
        raise UsageError(f"{check}: metric must be a name", f'e.g. {check}("accuracy", acc, 0.8)')
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{metric}: value {value!r} is not a number", "pass the metric's value as a number") from None
    # NaN compares False both ways, so a NaN metric fails either check.
    passed = number >= threshold if op == ">=" else number <= threshold
    return _finish(
        name or f"{check}[{metric}]",
        "model",
        passed,
        number,
        threshold,
        f"observed {metric} {_fmt(number)}, threshold {op} {_fmt(threshold)}",
        warn,
    )


def _columns(df: pd.DataFrame, columns: str | list[str] | None, check: str) -> list[Any]:
    """``columns`` as a list (all of the frame's when None), every one present."""
    if columns is None:
        return list(df.columns)
    cols = [columns] if isinstance(columns, str) else list(columns)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise UsageError(
            f"{check}: no column {_quote(repr(c) for c in missing)} in the frame",
            f"columns are {_quote((repr(c) for c in df.columns), 20)}",
        )
    return cols


def _frame_column(df: pd.DataFrame, column: str | None, what: str) -> pd.Series:
    if column is None:
        if df.shape[1] != 1:
            raise UsageError(f"{what} is a frame with {df.shape[1]} columns", "pass column= to say which one to compare")
        return df.iloc[:, 0].dropna()
    return df[_columns(df, column, what)[0]].dropna()


def _sample(data: Any, column: str | None, what: str) -> np.ndarray:
    """A 1-d array of the non-null values of ``data`` (a frame's ``column``)."""
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        values = _frame_column(data, column, what).to_numpy()
    else:
        values = pd.Series(np.asarray(data).ravel()).dropna().to_numpy()
    if len(values) == 0:
        raise UsageError(f"distribution_close: {what} has no non-null values", "check the data passed to the check")
    return values


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    return item() if callable(item) else value


def _default_name(check: str, columns: str | list[str] | None) -> str:
    if columns is None:
        return check
    cols = [columns] if isinstance(columns, str) else list(columns)
    return f"{check}[{','.join(map(str, cols))}]"


def _fmt(value: Any, none: str = "none") -> str:
    """A number short enough for a one-line message."""
    if value is None:
        return none
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        return f"{float(value):.4g}" if math.isfinite(float(value)) else str(float(value))
    return str(value)


def _quote(items: Iterable[str], limit: int = _QUOTE) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")
