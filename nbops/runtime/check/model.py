"""Model checks: a metric against a threshold, against a baseline, prediction latency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbops.errors import MissingExtraError, UsageError
from nbops.runtime.check.result import CheckResult, _finish, _fmt, _metric_bound

if TYPE_CHECKING:
    pass


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
            raise UsageError(f"better_than_baseline: unknown metric {metric!r}", "use a name from sklearn.metrics.get_scorer_names()") from e
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
        f"observed {metric_name} {_fmt(model_score)} vs {baseline.__class__.__name__} {_fmt(base_score)}, threshold {_fmt(bar)} (baseline + {_fmt(margin)})",
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
        f"observed median {_fmt(median)} ms per call (batch {size}, {n} calls, slowest {_fmt(max(times_ms))} ms), threshold {_fmt(max_ms)} ms",
        warn,
    )
