"""Drift: inputs a service logged (Registry.log_requests, as ``nbops serve --log-requests`` writes
them) against the data the version was trained on (the run's X_train), with nbops.compare's statistics."""

from __future__ import annotations

import json

import pytest

from nbops import models
from nbops.errors import NotFoundError
from nbops.models.registry import open_registry
from tests.conftest import run_cli
from tests.models.conftest import churn_frame

FEATURES = 11


@pytest.fixture(scope="module")
def drifting(churn):
    """The churn run's model registered twice under a name of its own: v1 is served the
    test rows as they are, v2 the same rows with monthly_fee 30 higher."""
    v1 = models.register(churn.run["id"], "train", "model", "churn-drift", near=churn.notebook)
    v2 = models.register(churn.run["id"], "train", "model", "churn-drift", near=churn.notebook)
    _, reg = open_registry(near=churn.notebook)
    rows = churn_frame(churn)
    shifted = rows.assign(monthly_fee=rows.monthly_fee + 30)
    for version, frame in ((v1["version"], rows), (v2["version"], shifted)):
        for chunk in range(0, len(frame), 100):  # one logged request per 100 rows, as a sampled service would
            part = frame.iloc[chunk : chunk + 100]
            reg.log_requests("churn-drift", version, len(part), {"columns": {c: part[c].tolist() for c in part.columns}})
    return churn, len(rows)


def test_unshifted_inputs_do_not_drift(drifting):
    churn, rows = drifting
    report = models.drift("churn-drift@1", near=churn.notebook)
    assert report.drifted == []
    assert report.served_rows == rows and report.requests == -(-rows // 100)
    assert report.reference.startswith("stage features, output X_train of run " + churn.run["id"])
    assert report.reference_rows == 1500  # 2,000 customers, 25% held out
    assert len(report.columns) == FEATURES
    assert all(c["test"] == "ks" and 0 <= c["p_value"] <= 1 and c["psi"] >= 0 for c in report.columns)
    frame = report.to_frame()
    assert list(frame.columns[:7]) == ["column", "kind", "test", "statistic", "p_value", "psi", "drifted"]
    assert "<table" in report._repr_html_()


def test_the_shifted_column_is_flagged_and_only_it(drifting):
    churn, _ = drifting
    report = models.drift("churn-drift@2", near=churn.notebook)
    assert report.drifted == ["monthly_fee"]
    fee = report.columns[0]
    assert fee["column"] == "monthly_fee" and fee["p_value"] < 1e-6 and fee["psi"] > 1
    # fee_per_month_of_tenure was computed from the unshifted fee: it stays where it was.
    assert not next(c for c in report.columns if c["column"] == "fee_per_month_of_tenure")["drifted"]


def test_since_keeps_recent_requests_and_says_when_none(drifting):
    churn, rows = drifting
    assert models.drift("churn-drift@2", since=3600, near=churn.notebook).served_rows == rows
    _, reg = open_registry(near=churn.notebook)
    with pytest.raises(NotFoundError, match=r"no served requests of churn-drift v2 were logged since .* UTC") as err:
        models.drift("churn-drift@2", since=0, near=churn.notebook)  # the last 0 seconds
    assert "--log-requests" in err.value.fix and "--since" in err.value.fix
    assert reg.requests("churn-drift", 2)  # still there: the window was empty, not the log


def test_no_logged_requests_is_a_clear_error(churn):
    models.register(churn.run["id"], "train", "model", "churn-quiet", near=churn.notebook)
    with pytest.raises(NotFoundError, match="no served requests of churn-quiet v1 were logged: nothing to compare"):
        models.drift("churn-quiet", near=churn.notebook)
    proc = run_cli("models", "drift", "churn-quiet@1", "--notebook", str(churn.notebook))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no served requests of churn-quiet v1" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_renders_the_report_and_json(drifting):
    churn, rows = drifting
    proc = run_cli("models", "drift", "churn-drift@2", "--since", "1d", "--notebook", str(churn.notebook))
    assert proc.returncode == 0, proc.stderr
    assert f"churn-drift v2: {rows} served rows" in proc.stdout
    assert "drifted: monthly_fee" in proc.stdout and "X_train" in proc.stdout
    proc = run_cli("models", "drift", "churn-drift@1", "--json", "--notebook", str(churn.notebook))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["drifted"] == [] and out["served_rows"] == rows and len(out["columns"]) == FEATURES
    proc = run_cli("models", "drift", "churn-drift@2", "--since", "yesterday", "--notebook", str(churn.notebook))
    assert proc.returncode == 2 and "is not an age" in proc.stderr


def test_array_models_compare_by_position(digits):
    """The digits network takes rows of 64 numbers: the reference is the run's X_train array."""
    import numpy as np

    models.register(digits.run["id"], "train", "net", "digits-drift", near=digits.notebook)
    _, reg = open_registry(near=digits.notebook)
    rng = np.random.default_rng(0)
    rows = rng.random((300, 64)).astype("float32") * 0.05  # almost blank images: far from the digits
    reg.log_requests("digits-drift", 1, len(rows), {"columns": {f"px{i}": rows[:, i].tolist() for i in range(64)}})
    report = models.drift("digits-drift@1", near=digits.notebook)
    assert report.reference.startswith("stage data, output X_train")
    assert len(report.columns) == 64 and report.served_rows == 300
    assert len(report.drifted) > 10
