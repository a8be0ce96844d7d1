"""Point-in-time training sets: known answers on small tables, and a random case checked row by row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbops import features
from nbops.errors import NotFoundError, UsageError

T = pd.Timestamp


@pytest.fixture(scope="module")
def near(tmp_path_factory):
    """One embedded store for the module: each test publishes tables of its own name."""
    return tmp_path_factory.mktemp("pit") / "nb.ipynb"


def _publish(near, name, rows, columns=("customer_id", "event_time", "spend"), **kw):
    df = pd.DataFrame(rows, columns=list(columns))
    df["event_time"] = pd.to_datetime(df["event_time"], format="ISO8601")
    return features.publish(df, name, entity="customer_id", timestamp="event_time", near=near, **kw)


def _entities(rows, index=None):
    df = pd.DataFrame(rows, columns=["customer_id", "label_time"], index=index)
    df["label_time"] = pd.to_datetime(df["label_time"], format="ISO8601")
    return df


def _values(out, col):
    return [None if pd.isna(x) else x for x in out[col]]


def test_the_latest_row_at_or_before_the_time_never_after(near):
    _publish(near, "spend_a", [(1, "2024-01-01", 10.0), (1, "2024-01-05", 20.0), (1, "2024-01-09", 30.0), (2, "2024-01-03", 5.0)])
    ents = _entities([(1, "2024-01-04"), (1, "2024-01-05"), (1, "2024-01-05 00:00:01"), (1, "2023-12-31"), (2, "2024-02-01"), (1, "2024-01-08 23:59")])
    out = features.training_set(ents, ["spend_a:latest"], timestamp="label_time", near=near)
    # 2024-01-05 exactly: the row of that instant counts (at or before); 2023-12-31: nothing yet.
    assert _values(out, "spend") == [10.0, 20.0, 20.0, None, 5.0, 20.0]


def test_entity_order_index_and_columns_are_kept(near):
    _publish(near, "spend_b", [(1, "2024-01-01", 1.0), (2, "2024-01-01", 2.0), (3, "2024-01-01", 3.0)])
    ents = _entities([(3, "2024-02-01"), (1, "2024-02-01"), (2, "2024-02-01"), (3, "2024-02-01")], index=[40, 10, 30, 20])
    ents["label"] = [1, 0, 1, 1]
    out = features.training_set(ents, ["spend_b"], timestamp="label_time", near=near)
    assert list(out.index) == [40, 10, 30, 20]
    assert list(out.columns) == ["customer_id", "label_time", "label", "spend"]
    assert _values(out, "spend") == [3.0, 1.0, 2.0, 3.0]
    pd.testing.assert_frame_equal(out[ents.columns], ents)


def test_entities_with_no_history_get_nulls(near):
    _publish(near, "spend_c", [(1, "2024-01-10", 1.0)])
    ents = _entities([(1, "2024-01-09"), (7, "2024-03-01"), (1, "2024-01-10")])
    out = features.training_set(ents, ["spend_c"], timestamp="label_time", near=near)
    assert _values(out, "spend") == [None, None, 1.0]


def test_ttl_turns_stale_values_into_nulls(near):
    _publish(near, "spend_d", [(1, "2024-01-01", 1.0), (1, "2024-01-10", 2.0), (2, "2024-01-01", 3.0)])
    ents = _entities([(1, "2024-01-03"), (1, "2024-01-04 00:00:01"), (1, "2024-01-11"), (2, "2024-01-04")])
    out = features.training_set(ents, ["spend_d"], timestamp="label_time", ttl="3d", near=near)
    # exactly 3 days old is still fresh; a second more is stale, even though a value exists
    assert _values(out, "spend") == [1.0, None, 2.0, 3.0]
    out = features.training_set(ents, ["spend_d"], timestamp="label_time", ttl=pd.Timedelta(days=2, hours=23), near=near)
    assert _values(out, "spend") == [1.0, None, 2.0, None]
    with pytest.raises(UsageError, match="not a duration"):
        features.training_set(ents, ["spend_d"], timestamp="label_time", ttl="soon", near=near)


def test_late_arriving_rows_count_from_the_version_that_has_them(near):
    _publish(near, "spend_e", [(1, "2024-01-01", 1.0), (1, "2024-01-10", 3.0)])
    # v2 adds a row for 2024-01-05 that arrived after 01-10 was published (last in the frame).
    _publish(near, "spend_e", [(1, "2024-01-01", 1.0), (1, "2024-01-10", 3.0), (1, "2024-01-05", 2.0)])
    ents = _entities([(1, "2024-01-06"), (1, "2024-01-11")])
    assert _values(features.training_set(ents, ["spend_e:v1"], timestamp="label_time", near=near), "spend") == [1.0, 3.0]
    assert _values(features.training_set(ents, ["spend_e:v2"], timestamp="label_time", near=near), "spend") == [2.0, 3.0]
    assert _values(features.training_set(ents, ["spend_e:latest"], timestamp="label_time", near=near), "spend") == [2.0, 3.0]


def test_ties_in_the_table_are_refused_or_resolved_by_the_last_row(near):
    rows = [(1, "2024-01-01", 1.0), (1, "2024-01-01", 9.0), (2, "2024-01-01", 5.0)]
    with pytest.raises(UsageError, match=r"customer_id=1.*event_time=2024-01-01") as err:
        _publish(near, "spend_f", rows)
    assert "dedupe='last'" in err.value.fix
    v = _publish(near, "spend_f", rows, dedupe="last")
    assert v["rows"] == 2
    out = features.training_set(_entities([(1, "2024-01-01"), (2, "2024-01-02")]), ["spend_f"], timestamp="label_time", near=near)
    assert _values(out, "spend") == [9.0, 5.0]


def test_several_tables_at_once_and_clashing_names(near):
    _publish(near, "stats_g", [(1, "2024-01-01", 1.0), (2, "2024-01-02", 2.0)], columns=("customer_id", "event_time", "value"))
    _publish(near, "orders_g", [(1, "2024-01-03", 10.0, 4), (2, "2024-01-01", 20.0, 5)], columns=("customer_id", "event_time", "value", "orders"))
    ents = _entities([(1, "2024-01-02"), (2, "2024-01-02"), (1, "2024-01-04")])
    ents["orders"] = [0, 0, 1]  # clashes with a feature column too
    out = features.training_set(ents, ["stats_g:latest", "orders_g:v1"], timestamp="label_time", near=near)
    assert list(out.columns) == ["customer_id", "label_time", "orders", "stats_g__value", "orders_g__value", "orders_g__orders"]
    assert _values(out, "stats_g__value") == [1.0, 2.0, 1.0]
    assert _values(out, "orders_g__value") == [None, 20.0, 10.0]
    assert _values(out, "orders_g__orders") == [None, 5.0, 4.0]
    assert list(out["orders"]) == [0, 0, 1]


def test_timezone_aware_tables_compare_instants(near):
    df = pd.DataFrame({"customer_id": [1, 1], "event_time": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 12:00"]).tz_localize("UTC"), "spend": [1.0, 2.0]})
    features.publish(df, "spend_h", entity="customer_id", timestamp="event_time", near=near)
    # 07:30 in New York is 12:30 UTC: after the second row, though its wall clock is before both.
    ents = pd.DataFrame({"customer_id": [1, 1], "label_time": pd.to_datetime(["2024-01-01 07:30", "2024-01-01 06:30"]).tz_localize("America/New_York")})
    out = features.training_set(ents, ["spend_h"], timestamp="label_time", near=near)
    assert _values(out, "spend") == [2.0, 1.0]
    assert str(out["label_time"].dtype) == "datetime64[ns, America/New_York]" or "America/New_York" in str(out["label_time"].dtype)
    naive = ents.assign(label_time=ents["label_time"].dt.tz_localize(None))
    with pytest.raises(UsageError, match=r"naive.*spend_h v1 has timezone-aware"):
        features.training_set(naive, ["spend_h"], timestamp="label_time", near=near)


def test_bad_references_and_columns_are_named(near):
    _publish(near, "spend_i", [(1, "2024-01-01", 1.0)])
    ents = _entities([(1, "2024-01-02")])
    with pytest.raises(NotFoundError, match="no feature table 'nope'"):
        features.training_set(ents, ["nope:latest"], timestamp="label_time", near=near)
    with pytest.raises(NotFoundError, match="has no version v9") as err:
        features.training_set(ents, ["spend_i:v9"], timestamp="label_time", near=near)
    assert "v1 to v1" in err.value.fix
    with pytest.raises(UsageError, match="'when' is not in entity_df"):
        features.training_set(ents, ["spend_i"], timestamp="when", near=near)
    with pytest.raises(UsageError, match="no column 'customer_id'"):
        features.training_set(ents.rename(columns={"customer_id": "cid"}), ["spend_i"], timestamp="label_time", near=near)
    with pytest.raises(UsageError, match="invalid version"):
        features.training_set(ents, ["spend_i:vx"], timestamp="label_time", near=near)


def test_random_tables_match_a_row_by_row_answer(near):
    rng = np.random.default_rng(7)
    n = 400
    times = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 60 * 24 * 30, n), unit="min")
    table = pd.DataFrame({"customer_id": rng.integers(0, 30, n), "event_time": times, "x": rng.normal(size=n)})
    table = table.drop_duplicates(["customer_id", "event_time"])
    features.publish(table, "rand_j", entity="customer_id", timestamp="event_time", near=near)
    ents = pd.DataFrame(
        {"customer_id": rng.integers(0, 35, 300), "label_time": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 60 * 24 * 32, 300), unit="min")}
    )
    out = features.training_set(ents, ["rand_j"], timestamp="label_time", ttl="5d", near=near)
    for row, got in zip(ents.itertuples(), out["x"], strict=True):
        past = table[(table.customer_id == row.customer_id) & (table.event_time <= row.label_time)]
        last = past.loc[past.event_time.idxmax()] if len(past) else None
        want = last.x if last is not None and row.label_time - last.event_time <= pd.Timedelta("5d") else None
        assert (pd.isna(got) and want is None) or got == want
