"""Frames with known answers for the widget tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def mixed_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Numbers, categories, strings, datetimes, booleans and nulls with known flags.

    id: id-like; price_tax = price * 1.2: correlated; income: lognormal, skewed;
    mostly_null: ~90 % null; const: constant; email: unique strings.
    """
    rng = np.random.default_rng(seed)
    price = rng.gamma(2.0, 20.0, n)
    frame = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "price": price,
            "price_tax": price * 1.2,
            "qty": rng.integers(1, 20, n),
            "income": rng.lognormal(10, 1.0, n),
            "score": rng.normal(0, 1, n),
            "mostly_null": np.where(rng.random(n) < 0.9, np.nan, rng.normal(size=n)),
            "const": np.full(n, 7.0),
            "flag": rng.random(n) < 0.3,
            "country": pd.Categorical.from_codes(rng.integers(0, 30, n), [f"c{i}" for i in range(30)]),
            "plan": np.array(["free", "pro", "team", "enterprise"])[rng.integers(0, 4, n)],
            "email": [f"user{i}@example.com" for i in rng.permutation(n)],
            "signup": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365 * 86400, n), unit="s"),
        }
    )
    frame.loc[rng.random(n) < 0.05, "score"] = np.nan
    return frame


@pytest.fixture(scope="session")
def frame_10k() -> pd.DataFrame:
    return mixed_frame(10_000)


@pytest.fixture(scope="session")
def make_mixed_frame():
    """``mixed_frame`` itself, for tests that need another size or seed."""
    return mixed_frame
