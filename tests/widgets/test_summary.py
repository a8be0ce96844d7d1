from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbops.errors import UsageError
from nbops.widgets.stats import Thresholds
from nbops.widgets.summary import summarize


def kinds_of(summary, column: str) -> set[str]:
    return {f.kind for f in summary.flags_of(column=column)}


def test_histogram_counts_are_exact():
    values = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0, 4.0, 10.0])
    col = summarize(pd.DataFrame({"x": values}), bins=5).column("x")
    assert col.histogram.counts.tolist() == np.histogram(values, bins=5)[0].tolist() == [4, 4, 1, 0, 1]
    assert col.histogram.edges.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert (col.minimum, col.maximum, col.n_distinct) == (0.0, 10.0, 9)


def test_small_integer_range_gets_one_bar_per_value():
    col = summarize(pd.DataFrame({"dice": [1, 2, 2, 3, 3, 3, 6]})).column("dice")
    assert col.histogram.counts.tolist() == [1, 2, 3, 0, 0, 1]
    assert col.histogram.centers.tolist() == [1, 2, 3, 4, 5, 6]


def test_stats_match_pandas(frame_10k):
    s = summarize(frame_10k)
    for name in ("price", "income", "score"):
        col, series = s.column(name), frame_10k[name]
        assert col.mean == pytest.approx(series.mean())
        assert col.std == pytest.approx(series.std())
        assert col.skew == pytest.approx(series.skew())
        assert col.quantiles["0.5"] == pytest.approx(series.median())
        assert col.n_distinct == series.nunique()
        assert col.histogram.counts.sum() == series.notna().sum()
    assert s.column("score").n_null == frame_10k["score"].isna().sum()
    assert s.column("plan").n_distinct == 4
    assert s.column("country").top.counts.sum() + s.column("country").top.other_count == 10_000


@pytest.mark.parametrize(
    "values",
    [
        np.arange(-500, 1500, dtype=np.int64),  # unique ids
        np.random.default_rng(2).integers(-3, 40, 5000),  # small counts
        np.where(np.random.default_rng(3).random(5000) < 0.1, np.nan, np.random.default_rng(4).poisson(3, 5000)),
        np.random.default_rng(5).normal(size=5000).round(1),  # ties, not integers
    ],
)
def test_counted_and_sorted_paths_match_numpy(values):
    col = summarize(pd.DataFrame({"v": values}), bins=30).column("v")
    present = values[~np.isnan(values)] if values.dtype.kind == "f" else values
    expected = np.quantile(present, [0.01, 0.25, 0.5, 0.99])
    got = [col.quantiles[k] for k in ("0.01", "0.25", "0.5", "0.99")]
    np.testing.assert_allclose(got, expected)
    assert col.n_distinct == len(np.unique(present))
    np.testing.assert_array_equal(col.histogram.counts, np.histogram(present, bins=col.histogram.edges)[0])


def test_flags_on_known_columns(frame_10k):
    s = summarize(frame_10k)
    assert kinds_of(s, "const") == {"constant"}
    assert kinds_of(s, "mostly_null") == {"high-null"}
    assert kinds_of(s, "income") == {"skewed"}
    assert kinds_of(s, "id") == {"id-like"}
    assert kinds_of(s, "email") == {"id-like"}
    assert [f.columns for f in s.flags_of("correlated")] == [("price", "price_tax")]
    for clean in ("score", "qty", "plan", "country", "flag", "signup", "price"):
        assert kinds_of(s, clean) <= {"correlated"}, clean
    assert s.n_duplicate_rows == 0


def test_near_unique_strings_and_thresholds():
    names = [f"name{i}" for i in range(95)] + ["name0"] * 5
    s = summarize(pd.DataFrame({"name": names}))
    assert kinds_of(s, "name") == {"near-unique"}
    strict = summarize(pd.DataFrame({"name": names}), thresholds=Thresholds(near_unique=0.99))
    assert kinds_of(strict, "name") == set()


def test_duplicate_rows_counted_across_kinds():
    df = pd.DataFrame(
        {
            "a": [1.0, 1.0, np.nan, np.nan, -0.0, 0.0],
            "b": ["x", "x", None, None, "y", "y"],
            "t": pd.to_datetime(["2020-01-01", "2020-01-01", None, None, "2021-01-01", "2021-01-01"]),
        }
    )
    s = summarize(df)
    assert s.n_duplicate_rows == 3  # -0.0 and 0.0 are the same value
    assert s.flags_of("duplicate-rows")[0].value == pytest.approx(0.5)


def test_empty_frames():
    s = summarize(pd.DataFrame())
    assert (s.n_rows, s.n_columns, s.flags, s.columns) == (0, 0, (), ())
    s = summarize(pd.DataFrame({"a": pd.Series([], dtype=float), "b": pd.Series([], dtype=str)}))
    assert s.n_rows == 0 and [c.n_distinct for c in s.columns] == [0, 0]
    assert s.column("a").histogram is None and s.flags == ()


def test_all_null_columns_of_every_dtype():
    df = pd.DataFrame({"obj": [None] * 4, "num": [np.nan] * 4, "text": pd.Series([None] * 4, dtype="str"), "when": pd.Series([pd.NaT] * 4)})
    s = summarize(df)
    for col in s.columns:
        assert col.kind == "empty" and col.null_fraction == 1.0
        assert kinds_of(s, col.name) == {"all-null"}
    assert s.correlation.columns == ()


def test_mixed_type_object_column():
    values = pd.Series([1, "a", 2.5, None, [1, 2], {"k": 1}] * 5, dtype=object)
    s = summarize(pd.DataFrame({"m": values}))
    col = s.column("m")
    assert col.kind == "text"
    assert col.python_types == ("dict", "float", "int", "list", "str")
    assert "mixed-types" in kinds_of(s, "m")
    assert sorted(col.top.labels) == sorted(["1", "a", "2.5", "[1, 2]", "{'k': 1}"])
    assert col.n_null == 5


def test_booleans_and_nullable_types():
    df = pd.DataFrame(
        {
            "b": [True, False, True] * 10,
            "nb": pd.array([True, None, False] * 10, dtype="boolean"),
            "i": pd.array([1, None, 3] * 10, dtype="Int64"),
            "objnum": pd.Series([1, 2.5, None] * 10, dtype=object),
        }
    )
    s = summarize(df)
    assert s.column("b").kind == "boolean"
    assert dict(zip(s.column("b").top.labels, s.column("b").top.counts.tolist())) == {"True": 20, "False": 10}
    assert s.column("nb").n_null == 10 and s.column("nb").n_distinct == 2
    assert s.column("i").kind == "numeric" and s.column("i").mean == pytest.approx(2.0)
    assert s.column("objnum").kind == "numeric" and s.column("objnum").maximum == 2.5


def test_infinite_values_are_counted_not_binned():
    s = summarize(pd.DataFrame({"x": [1.0, np.inf, -np.inf, np.nan, 2.0] * 5}))
    col = s.column("x")
    assert (col.n_inf, col.n_null, col.minimum, col.maximum) == (10, 5, 1.0, 2.0)
    assert col.histogram.counts.sum() == 10
    assert col.n_distinct == 4  # 1, 2, +inf, -inf
    assert "infinite" in kinds_of(s, "x")


def test_single_row_flags_nothing():
    df = pd.DataFrame({"a": [1.0], "b": ["x"], "c": [pd.Timestamp("2020-01-01")], "d": [True]})
    s = summarize(df)
    assert s.n_rows == 1 and s.flags == ()
    assert s.column("c").histogram.counts.tolist() == [1]
    assert s.column("a").std is None


def test_extreme_floats_do_not_crash():
    col = summarize(pd.DataFrame({"x": [-1.7e308, 1.7e308, 0.0]})).column("x")
    assert col.histogram is None and col.minimum == -1.7e308


def test_datetime_histogram_and_timezone():
    when = pd.Series(pd.date_range("2024-01-01", periods=48, freq="h", tz="Europe/Paris"))
    col = summarize(pd.DataFrame({"when": when}), bins=2).column("when")
    assert col.timezone == "Europe/Paris"
    assert col.histogram.edges.dtype.kind == "M"
    assert col.histogram.counts.tolist() == [24, 24]
    assert col.minimum.startswith("2024-01-01 00:00")


def test_repeated_and_non_string_column_labels():
    df = pd.DataFrame([[1, 2, "a"], [1, 2, "b"]], columns=["a", "a", 0])
    s = summarize(df)
    assert [c.name for c in s.columns] == ["a", "a", "0"]


def test_series_and_bad_input():
    assert summarize(pd.Series([1, 2, 3], name="s")).columns[0].name == "s"
    with pytest.raises(UsageError):
        summarize([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        summarize(pd.DataFrame({"a": [1]}), bins=0)


def test_correlation_sample_is_seeded_and_noted(frame_10k):
    s = summarize(frame_10k, sample_rows=2_000, seed=3)
    assert s.correlation.sample_rows == 2_000
    assert "2,000" in s.notes[0]
    again = summarize(frame_10k, sample_rows=2_000, seed=3)
    np.testing.assert_array_equal(s.correlation.matrix, again.correlation.matrix)
    # Constant columns have no correlation to speak of and are left out.
    assert "const" not in s.correlation.columns


def test_million_rows(make_mixed_frame):
    df = make_mixed_frame(1_000_000, seed=1)
    s = summarize(df)
    assert s.n_rows == 1_000_000 and s.n_columns == df.shape[1]
    assert kinds_of(s, "const") == {"constant"}
    assert kinds_of(s, "mostly_null") == {"high-null"}
    assert kinds_of(s, "income") == {"skewed"}
    assert kinds_of(s, "id") == {"id-like"} and kinds_of(s, "email") == {"id-like"}
    assert [f.columns for f in s.flags_of("correlated")] == [("price", "price_tax")]
    assert s.correlation.sample_rows == 100_000
    assert s.n_duplicate_rows == 0


def test_threads_do_not_change_the_result(frame_10k):
    one, two = summarize(frame_10k, workers=1), summarize(frame_10k, workers=2)
    assert one.flags == two.flags and one.n_duplicate_rows == two.n_duplicate_rows
    assert [c.n_distinct for c in one.columns] == [c.n_distinct for c in two.columns]
    np.testing.assert_array_equal(one.correlation.matrix, two.correlation.matrix)


def test_duplicates_found_when_no_column_is_unique():
    df = pd.DataFrame({"a": [1, 2, 1, 2], "b": ["x", "y", "x", "z"], "c": [0.5, 0.5, 0.5, 0.5]})
    assert summarize(df, workers=2).n_duplicate_rows == 1
