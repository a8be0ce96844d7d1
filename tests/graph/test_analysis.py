"""What one cell reads and defines (static analysis, no execution)."""

from __future__ import annotations

import pytest

from nbops.graph import analyze_source


@pytest.mark.parametrize(
    "source, reads, defines",
    [
        ("df['x'] = 1", ["df"], {"df"}),
        ("obj.attr = 2", ["obj"], {"obj"}),
        ("n += 1", ["n"], {"n"}),
        ("df.drop(columns=['a'], inplace=True)", ["df"], {"df"}),
        ("items.append(3)", ["items"], {"items"}),
        ("model.fit(X, y)", ["model", "X", "y"], {"model"}),
        ("for d in [a, b]:\n    d['k'] = 0", ["a", "b"], {"a", "b", "d"}),
        ("alias = frame\nalias['c'] = 1", ["frame"], {"frame", "alias"}),
        ("t.add_(1)", ["t"], {"t"}),
        ("random.shuffle(deck)", ["random", "deck"], {"deck"}),
        ("x = [v * w for v in vals]", ["vals", "w"], {"x"}),  # comprehension scope
        ("import numpy as np\ny = np.zeros(2)", [], {"np", "y"}),
    ],
)
def test_analysis_rules(source, reads, defines):
    a = analyze_source(source)
    assert a.reads == reads
    assert a.defines == defines


def test_function_bodies_are_deferred_reads():
    a = analyze_source("def f(v):\n    return v * factor\nresult = f(2)")
    assert "factor" in a.deferred and "factor" not in a.reads
