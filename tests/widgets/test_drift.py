from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbops.datastats.drift import drift_table, psi
from nbops.errors import UsageError


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(7)
    n = 20_000
    ref = pd.DataFrame(
        {
            "stable": rng.normal(size=n),
            "shifted": rng.normal(size=n),
            "colour": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
            "city": rng.choice(["a", "b"], n),
        }
    )
    new = pd.DataFrame(
        {
            "stable": rng.normal(size=n),
            "shifted": rng.normal(loc=1.0, size=n),
            "colour": rng.choice(["red", "green", "blue"], n, p=[0.2, 0.3, 0.5]),
            "city": rng.choice(["a", "b"], n),
        }
    )
    return ref, new


def test_shifted_normal_ranks_first_among_numbers(frames):
    table = drift_table(*frames)
    numeric = [c.name for c in table.columns if c.kind == "numeric"]
    assert numeric == ["shifted", "stable"]
    shifted, stable = table.column("shifted"), table.column("stable")
    assert shifted.test == "ks" and shifted.p_value < 1e-10 and shifted.statistic > 0.3
    assert shifted.psi > 0.25 and shifted.drifted
    assert stable.p_value > 0.01 and stable.psi < 0.02 and not stable.drifted


def test_categorical_drift(frames):
    table = drift_table(*frames)
    colour, city = table.column("colour"), table.column("city")
    assert colour.test == "chi2" and colour.drifted and colour.p_value < 1e-10
    assert not city.drifted
    assert set(colour.labels) == {"red", "green", "blue"}
    assert colour.reference_counts.sum() == colour.new_counts.sum() == 20_000
    # A one-sd shift (PSI ~1) outranks a 50/30/20 -> 20/30/50 mix (PSI ~0.55).
    assert table.drifted == ["shifted", "colour"]


def test_sorted_by_psi(frames):
    scores = [c.psi for c in drift_table(*frames).columns]
    assert scores == sorted(scores, reverse=True)


def test_missing_and_retyped_columns_rank_first():
    ref = pd.DataFrame({"a": [1.0, 2.0, 3.0], "gone": [1, 2, 3], "kind": [1.0, 2.0, 3.0]})
    new = pd.DataFrame({"a": [1.0, 2.0, 3.0], "extra": [1, 2, 3], "kind": ["x", "y", "z"]})
    table = drift_table(ref, new)
    assert [c.name for c in table.columns[:3]] == ["gone", "kind", "extra"]
    assert table.column("kind").kind == "type-changed"
    assert table.column("gone").note == "not in new_df"
    assert table.columns[-1].name == "a" and not table.columns[-1].drifted


def test_psi_known_value():
    assert psi([50, 50], [50, 50]) == 0.0
    expected = (0.7 - 0.5) * np.log(0.7 / 0.5) + (0.3 - 0.5) * np.log(0.3 / 0.5)
    assert psi([50, 50], [70, 30]) == pytest.approx(expected)


def test_datetime_and_null_columns():
    ref = pd.DataFrame({"t": pd.date_range("2020", periods=500, freq="D"), "n": [None] * 500})
    new = pd.DataFrame({"t": pd.date_range("2021", periods=500, freq="D").as_unit("ns"), "n": [None] * 500})
    table = drift_table(ref, new, bins=10)
    t = table.column("t")
    assert t.kind == "datetime" and t.drifted and t.edges.dtype.kind == "M" and len(t.edges) == 11
    assert t.reference_counts.sum() == t.new_counts.sum() == 500
    assert not table.column("n").drifted


def test_bad_input():
    with pytest.raises(UsageError):
        drift_table([1, 2], pd.DataFrame())  # type: ignore[arg-type]
