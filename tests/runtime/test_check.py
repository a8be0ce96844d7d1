"""nbops.check: every check passing and failing, in and out of a run, and in a real notebook."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

import nbops
from nbops.errors import UsageError
from nbops.runtime import check, context
from nbops.runtime.check import CheckFailed, CheckResult

RECORD_KEYS = {"name", "kind", "stage", "passed", "observed", "threshold", "message", "warn"}


@pytest.fixture(autouse=True)
def no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # The context is module-global: a test that begins a stage must not leak it.
    monkeypatch.setattr(context, "_current", None)


@pytest.fixture
def in_run(tmp_path: Path) -> Path:
    """A running stage "train"; yields the folder its records go to."""
    context.begin_stage("train", tmp_path)
    return tmp_path / "train"


@pytest.fixture
def people() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5],
            "age": [23, 35, None, 51, 64],
            "income": [30.0, 42.0, 55.0, 61.0, 70.0],
            "color": ["red", "green", "red", "blue", "green"],
        }
    )


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# Each case: a check call that passes and the same check with data that fails it.
CASES = {
    "no_nulls": (
        lambda df: check.no_nulls(df, ["id", "income"]),
        lambda df: check.no_nulls(df, ["age", "income"]),
    ),
    "in_range": (
        lambda df: check.in_range(df, "age", min=18, max=100),
        lambda df: check.in_range(df, "age", max=60),
    ),
    "allowed_values": (
        lambda df: check.allowed_values(df, "color", {"red", "green", "blue"}),
        lambda df: check.allowed_values(df, "color", ["red", "green"]),
    ),
    "row_count": (
        lambda df: check.row_count(df, min=5, max=5),
        lambda df: check.row_count(df, min=100),
    ),
    "unique": (
        lambda df: check.unique(df, "id"),
        lambda df: check.unique(df, ["color"]),
    ),
    "distribution_close": (
        lambda df: check.distribution_close(rng().normal(size=2000), rng().normal(size=2000) + 0.01),
        lambda df: check.distribution_close(rng().normal(size=2000), rng().normal(size=2000) + 1.0),
    ),
    "max_correlation": (
        lambda df: check.max_correlation(df.assign(noise=[3.0, -1.0, 4.0, 1.0, -5.0]), columns=["age", "noise"]),
        lambda df: check.max_correlation(df, threshold=0.9),
    ),
    "class_balance": (
        lambda df: check.class_balance([0, 1] * 50, {0: 0.5, 1: 0.5}),
        lambda df: check.class_balance([0] * 80 + [1] * 20, {0: 0.5, 1: 0.5}, tolerance=0.1),
    ),
    "metric_at_least": (
        lambda df: check.metric_at_least("accuracy", np.float64(0.91), 0.9),
        lambda df: check.metric_at_least("accuracy", 0.7, 0.9),
    ),
    "metric_at_most": (
        lambda df: check.metric_at_most("rmse", 2.5, 3.0),
        lambda df: check.metric_at_most("rmse", float("nan"), 3.0),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_check_passes_and_prints_outside_a_run(case, people, capsys) -> None:
    result = CASES[case][0](people)
    assert isinstance(result, CheckResult)
    assert result.passed and result.stage is None and not result.warn
    assert result.name.startswith(case)
    out = capsys.readouterr().out
    assert out.startswith(f"nbops check {result.name}: PASS observed ")
    assert "threshold" in out and out.count("\n") == 1
    json.dumps(result.to_record())  # JSON as it is, numpy scalars included


@pytest.mark.parametrize("case", CASES)
def test_check_fails_with_observed_and_threshold(case, people, capsys) -> None:
    with pytest.raises(CheckFailed) as failed:
        CASES[case][1](people)
    assert isinstance(failed.value, AssertionError)
    result = failed.value.result
    assert not result.passed and result.status == "FAIL"
    assert str(failed.value) == f"check {result.name} failed: {result.message}"
    assert "observed" in result.message and "threshold" in result.message
    assert f"nbops check {result.name}: FAIL" in capsys.readouterr().out


@pytest.mark.parametrize("case", CASES)
def test_check_records_in_a_run(case, people, in_run) -> None:
    passing, failing = CASES[case]
    passing(people)
    with pytest.raises(CheckFailed):
        failing(people)
    records = context.read_records(in_run, "checks")
    assert [r["passed"] for r in records] == [True, False]
    for record in records:
        assert set(record) == RECORD_KEYS
        assert record["stage"] == "train"
        assert record["kind"] == ("model" if case.startswith("metric") else "data")


def test_warn_records_a_failure_without_raising(people, in_run, capsys) -> None:
    result = check.no_nulls(people, name="ages complete", warn=True)
    assert not result.passed and result.warn and result.status == "WARN"
    assert "nbops check ages complete: WARN observed 1 nulls (age: 1), threshold 0" in capsys.readouterr().out
    [record] = context.read_records(in_run, "checks")
    assert record == result.to_record()
    assert record["name"] == "ages complete" and record["passed"] is False and record["warn"] is True


def test_observed_values_say_what_was_found(people) -> None:
    assert check.no_nulls(people, warn=True).observed == 1
    assert check.in_range(people, "age", max=60, warn=True).observed == {"min": 23.0, "max": 64.0, "outside": 1}
    assert check.allowed_values(people, "color", ["red"], warn=True).observed == {"rows": 3, "unexpected": ["blue", "green"]}
    assert check.unique(people, "color", warn=True).message == "observed 2 duplicate keys (e.g. 'red'), threshold 0"
    leak = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "noise": [2.0, -1.0, 1.0, 0.0], "leak": [-2.0, -4.1, -6.0, -8.0]})
    assert check.max_correlation(leak, warn=True).observed == {"pair": ["x", "leak"], "corr": pytest.approx(-0.9998, abs=1e-4)}
    balance = check.class_balance(pd.Series(["a"] * 7 + ["b"] * 2 + ["c"]), {"a": 0.7, "b": 0.25}, tolerance=0.05, warn=True)
    assert balance.observed == {"a": 0.7, "b": 0.2, "c": 0.1}
    assert "worst 'c' off by 0.1" in balance.message


def test_class_balance_fails_on_an_unexpected_label() -> None:
    with pytest.raises(CheckFailed, match="worst 'c'"):
        check.class_balance(["a"] * 45 + ["b"] * 45 + ["c"] * 10, {"a": 0.5, "b": 0.5}, tolerance=0.06)


def test_distribution_close_on_frame_columns_and_p_value() -> None:
    data = pd.DataFrame({"x": rng().normal(size=3000), "y": 0.0})
    shifted = data.assign(x=data["x"] + 0.1)
    # A small shift: the KS statistic says close, a p-value on 3000 rows says different.
    assert check.distribution_close(data, shifted, column="x").passed
    with pytest.raises(CheckFailed, match=r"threshold p >= 0.05"):
        check.distribution_close(data, shifted, column="x", min_p=0.05)
    with pytest.raises(UsageError, match="pass column="):
        check.distribution_close(data, shifted)


def test_argument_mistakes_are_usage_errors(people) -> None:
    with pytest.raises(UsageError, match="no column 'salary'"):
        check.no_nulls(people, ["age", "salary"])
    with pytest.raises(UsageError, match="give min=, max= or both"):
        check.in_range(people, "age")
    with pytest.raises(UsageError, match="not a number"):
        check.metric_at_least("accuracy", "high", 0.9)


# --------------------------------------------------------------------------- models


@pytest.fixture(scope="module")
def split() -> tuple:
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    # Imbalanced (80/20): the majority-class baseline scores about 0.8.
    X, y = make_classification(n_samples=600, n_features=8, n_informative=4, weights=[0.8], class_sep=2.5, random_state=0)
    return train_test_split(X, y, test_size=0.3, random_state=0)


def test_a_real_model_beats_the_baseline(split, in_run) -> None:
    from sklearn.linear_model import LogisticRegression

    X_train, X_test, y_train, y_test = split
    model = LogisticRegression().fit(X_train, y_train)
    result = check.better_than_baseline(model, X_train, y_train, X_test, y_test, margin=0.05)
    assert result.passed and result.name == "better_than_baseline[accuracy]"
    assert result.observed["score"] > result.observed["baseline"] + 0.05
    assert result.threshold == pytest.approx(result.observed["baseline"] + 0.05)
    [record] = context.read_records(in_run, "checks")
    assert record["kind"] == "model" and set(record["observed"]) == {"metric", "score", "baseline"}


def test_a_model_fitted_on_shuffled_labels_does_not(split) -> None:
    from sklearn.tree import DecisionTreeClassifier

    X_train, X_test, y_train, y_test = split
    noise = DecisionTreeClassifier(random_state=0).fit(X_train, np.random.default_rng(0).permutation(y_train))
    with pytest.raises(CheckFailed, match="DummyClassifier") as failed:
        check.better_than_baseline(noise, X_train, y_train, X_test, y_test)
    assert failed.value.result.observed["score"] < failed.value.result.observed["baseline"]
    # Any scorer name, or a function of (y_true, y_pred), replaces accuracy.
    with pytest.raises(CheckFailed, match="observed f1_macro"):
        check.better_than_baseline(noise, X_train, y_train, X_test, y_test, metric="f1_macro", margin=0.5)


def test_baseline_for_a_regressor_and_a_metric_function() -> None:
    from sklearn.datasets import make_regression
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import mean_absolute_error

    X, y = make_regression(n_samples=200, n_features=4, noise=1.0, random_state=0)
    model = LinearRegression().fit(X[:150], y[:150])
    assert check.better_than_baseline(model, X[:150], y[:150], X[150:], y[150:]).observed["metric"] == "r2"

    def neg_mae(y_true, y_pred) -> float:
        return -mean_absolute_error(y_true, y_pred)

    result = check.better_than_baseline(model, X[:150], y[:150], X[150:], y[150:], metric=neg_mae)
    assert result.passed and "DummyRegressor" in result.message and result.name == "better_than_baseline[neg_mae]"


def test_an_unfitted_model_is_a_usage_error(split) -> None:
    from sklearn.linear_model import LogisticRegression

    X_train, X_test, y_train, y_test = split
    with pytest.raises(UsageError, match="not fitted"):
        check.better_than_baseline(LogisticRegression(), X_train, y_train, X_test, y_test)


def test_latency_of_a_slow_model_fails(in_run) -> None:
    calls: list[int] = []

    def slow_predict(rows: np.ndarray) -> np.ndarray:
        calls.append(len(rows))
        time.sleep(0.02)
        return np.zeros(len(rows))

    with pytest.raises(CheckFailed, match=r"threshold 5 ms") as failed:
        check.prediction_latency(slow_predict, np.ones((10, 3)), max_ms=5, n=3, batch=2)
    assert failed.value.result.observed >= 20
    assert calls == [2, 2, 2, 2]  # one warm-up call, then n timed calls, batch rows each
    [record] = context.read_records(in_run, "checks")
    assert record["name"] == "prediction_latency" and record["passed"] is False


def test_latency_of_a_fast_model_passes(people) -> None:
    class Model:
        def predict(self, rows: pd.DataFrame) -> np.ndarray:
            return np.zeros(len(rows))

    result = check.prediction_latency(Model(), people, max_ms=50, n=5, batch=None)
    assert result.passed and 0 <= result.observed < 50


# --------------------------------------------------------------------------- plumbing


def test_summarize_checks_counts_by_status(people) -> None:
    records = [
        check.row_count(people, min=1).to_record(),
        check.row_count(people, min=10, warn=True).to_record(),
        {**check.row_count(people, min=10, name="big enough", warn=True).to_record(), "warn": False},
    ]
    summary = check.summarize_checks(records)
    assert summary == {
        "total": 3,
        "passed": 1,
        "failed": 1,
        "warned": 1,
        "failed_names": ["big enough"],
        "warned_names": ["row_count"],
    }


def test_check_failed_pickles_with_its_result(people) -> None:
    with pytest.raises(CheckFailed) as failed:
        check.row_count(people, max=2)
    copy = pickle.loads(pickle.dumps(failed.value))
    assert str(copy) == str(failed.value) and copy.result == failed.value.result


def test_import_stays_light() -> None:
    code = "import sys, nbops; nbops.check.row_count; print(sorted(m for m in ('scipy', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_nbops_check_is_this_module() -> None:
    assert nbops.check is check


@pytest.mark.slow
def test_a_failing_check_fails_a_papermill_run(tmp_path: Path) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"import nbops\nimport pandas as pd\nnbops.runtime.begin_stage('clean', {str(tmp_path)!r})"),
        nbformat.v4.new_code_cell("df = pd.DataFrame({'age': [30, None]})\nnbops.check.no_nulls(df, ['age'])"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source, executed = tmp_path / "stage.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, source)
    with pytest.raises(PapermillExecutionError) as failed:
        papermill.execute_notebook(str(source), str(executed), kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    assert failed.value.ename == "CheckFailed"
    assert "check no_nulls[age] failed: observed 1 nulls (age: 1), threshold 0" in failed.value.evalue
    [record] = context.read_records(tmp_path / "clean", "checks")
    assert record["stage"] == "clean" and record["passed"] is False
    outputs = nbformat.read(executed, as_version=4).cells[-1].outputs
    assert any("nbops check no_nulls[age]: FAIL" in o.get("text", "") for o in outputs)
