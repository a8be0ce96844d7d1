from __future__ import annotations

import numpy as np
import pytest

from nbops.errors import UsageError
from nbops.pareto import pareto_front


def test_known_front_maximizing_both():
    points = [[1, 1], [2, 2], [0, 3], [3, 0], [1.5, 1.5], [2, 1]]
    assert pareto_front(points, ["max", "max"]).tolist() == [False, True, True, True, False, False]


def test_mixed_directions():
    # accuracy up, latency down
    points = [[0.90, 100], [0.92, 150], [0.91, 90], [0.85, 80], [0.80, 120]]
    assert pareto_front(points, ["max", "min"]).tolist() == [False, True, True, True, False]


def test_ties_nans_and_empty():
    points = [[1, 1], [1, 1], [np.nan, 5], [0, 0]]
    assert pareto_front(points, ["max", "max"]).tolist() == [True, True, False, False]
    assert pareto_front(np.empty((0, 2)), ["max", "min"]).tolist() == []


def test_matches_brute_force_on_random_points():
    rng = np.random.default_rng(0)
    points = rng.random((3000, 3))  # more than one chunk
    front = pareto_front(points, ["min", "min", "max"])
    costs = points * [1, 1, -1]
    brute = [not any((c <= p).all() and (c < p).any() for c in costs) for p in costs[:200]]
    assert front[:200].tolist() == brute
    assert front.any()


def test_bad_directions():
    with pytest.raises(UsageError):
        pareto_front([[1, 2]], ["max"])
    with pytest.raises(UsageError):
        pareto_front([[1, 2]], ["up", "down"])
    with pytest.raises(UsageError):
        pareto_front([1, 2], ["max"])
