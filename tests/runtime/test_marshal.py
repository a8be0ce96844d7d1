"""Typed serializers, atomic writes, and the unserializable-value error."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nbops.errors import MarshalError
from nbops.runtime import marshal


@pytest.mark.parametrize(
    "value, serializer",
    [
        (pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), "pandas"),
        (pd.Series([1.5, 2.5], name="s"), "pandas"),
        (np.arange(6).reshape(2, 3), "numpy"),
        ({"nested": [1, (2, 3)], "set": {4}}, "pickle"),
        (pd.DataFrame({0: [1]}), "pickle"),  # non-string columns: parquet can't, pickle can
    ],
)
def test_round_trip(tmp_path, value, serializer):
    marshal.end("s", str(tmp_path), {"v": value}, outputs={"v": ["t"]})
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["outputs"]["v"]["serializer"] == serializer
    back = marshal.load_input(str(tmp_path), "s", "v", "t")
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(back, value)
    elif isinstance(value, pd.Series):
        pd.testing.assert_series_equal(back, value)
    elif isinstance(value, np.ndarray):
        np.testing.assert_array_equal(back, value)
    else:
        assert back == value


def test_sklearn_and_torch_serializers(tmp_path):
    import torch
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit([[0], [1]], [0, 1])
    net = torch.nn.Linear(2, 1)
    marshal.end("s", str(tmp_path), {"model": model, "net": net}, outputs={"model": ["t"], "net": ["t"]})
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())["outputs"]
    assert manifest["model"]["serializer"] == "sklearn" and manifest["net"]["serializer"] == "torch"
    assert marshal.load_input(str(tmp_path), "s", "model", "t").predict([[2]])[0] == pytest.approx(2)
    assert isinstance(marshal.load_input(str(tmp_path), "s", "net", "t"), torch.nn.Linear)


def test_lambda_goes_through_cloudpickle(tmp_path):
    marshal.end("s", str(tmp_path), {"f": lambda x: x + 1}, outputs={"f": ["t"]})
    assert marshal.load_input(str(tmp_path), "s", "f", "t")(1) == 2


def test_unserializable_value_names_variable_stages_and_fix(tmp_path):
    gen = (i for i in range(3))
    with pytest.raises(MarshalError) as info:
        marshal.end("prepare", str(tmp_path), {"rows": gen}, outputs={"rows": ["train", "report"]})
    msg = info.value.render()
    assert "'rows'" in msg and "'prepare'" in msg and "'train'" in msg and "'report'" in msg
    assert "fix:" in msg and "setup" in msg
    assert not any(p.name.endswith(".tmp") or ".tmp-" in p.name for p in (tmp_path / "prepare").iterdir())


def test_missing_upstream_says_what_to_run(tmp_path):
    with pytest.raises(MarshalError, match="run stage 'load' first"):
        marshal.load_input(str(tmp_path), "load", "df", "train")


def test_entry_point_group_is_registered():
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="nbops.serializers")}
    assert {"pandas", "numpy", "torch", "sklearn", "pickle"} <= names
    assert [s.name for s in marshal.serializers()][-1] == "pickle"


def test_scalars_and_metrics_cell(tmp_path):
    from nbops.runtime import context

    context.begin_stage("s", tmp_path)
    try:
        marshal.end(
            "s", str(tmp_path), {"acc": np.float64(0.9), "n": 3, "name": "x"}, outputs={}, metrics=["acc", "acc * 100", "missing"], scalars=["acc", "n", "name"]
        )
    finally:
        context._current = None
    assert json.loads((tmp_path / "s" / "scalars.json").read_text()) == {"acc": 0.9, "n": 3}
    recs = context.read_records(tmp_path / "s", "metrics")
    assert [(r["name"], r["value"]) for r in recs] == [("acc", 0.9), ("acc * 100", 90.0)]
