"""Continuous training on real runs: a tiny training notebook (logistic regression, a
parameter that flips training labels to make it worse) run as a schedule's firings.
The first model is promoted, a worse one refused with both values in the reason, a
better one promoted; a run whose checks did not pass is not promoted; regressions
against the previous succeeded firing are found in the direction each metric's goal says."""

from __future__ import annotations

import time

import pytest

from nbops import api, models
from nbops.automate.promote import promote_after, regressions
from nbops.store import open_store
from nbops.store.schedules import ScheduleStore
from tests.conftest import build_notebook

CELLS = [
    ("flip = 0.2\nmin_accuracy = 0.0", ["parameters"]),
    (
        "import numpy as np\nimport nbops\nfrom sklearn.datasets import make_classification\n"
        "from sklearn.linear_model import LogisticRegression\nfrom sklearn.metrics import log_loss",
        ["setup"],
    ),
    (
        "assert 0 <= flip <= 1, 'flip is the fraction of training labels to flip'\n"
        "X, y = make_classification(n_samples=300, n_features=6, n_informative=4, class_sep=1.5, random_state=0)\n"
        "X_test, y_test = X[200:], y[200:]\n"
        "y_train = y[:200].copy()\n"
        "flipped = np.random.default_rng(0).random(200) < flip  # wrong labels: a worse model\n"
        "y_train[flipped] = 1 - y_train[flipped]\n"
        "model = LogisticRegression().fit(X[:200], y_train)\n"
        "nbops.log_model(model, 'churn', input_example=X_test[:2])",
        ["stage:train"],
    ),
    (
        "accuracy = float(model.score(X_test, y_test))\n"
        "nbops.log_metric('accuracy', accuracy, goal='max')\n"
        "nbops.log_metric('loss', float(log_loss(y_test, model.predict_proba(X_test))), goal='min')\n"
        "nbops.check.metric_at_least('accuracy', accuracy, min_accuracy, warn=True)",
        ["stage:evaluate"],
    ),
]
PROMOTE = {"model": "churn", "alias": "production", "require": ["accuracy>=0.6"], "require_better_than": "production"}


@pytest.fixture
def nb(tmp_path, monkeypatch):
    monkeypatch.delenv("NBOPS_STORE", raising=False)
    return build_notebook(tmp_path, CELLS, "train.ipynb")


def _fire(ss: ScheduleStore, nb, key: str, params: dict) -> dict:
    """What the scheduler does around a run: a firing, the run, the firing's outcome."""
    assert ss.add_firing("nightly", key, due_at=time.time())
    run = api.run(nb, params)
    ss.set_firing("nightly", key, status=run["status"], run_id=run["id"], ended_at=time.time())
    return run


def test_a_better_model_is_promoted_a_worse_one_refused(nb):
    ss = ScheduleStore(open_store(None, nb))  # the store beside the notebook, where its runs go
    assert ss.add("nightly", notebook=str(nb), trigger={"kind": "every", "seconds": 86400}, promote=PROMOTE)
    schedule = ss.get("nightly")

    first = _fire(ss, nb, "k1", {"flip": 0.2})
    assert first["status"] == "succeeded" and first["metrics"]["accuracy"] == pytest.approx(0.80)
    p1 = promote_after(ss, schedule, "k1", first)
    assert p1["promoted"] and (p1["model"], p1["version"], p1["alias"], p1["from"]) == ("churn", 1, "production", None)
    assert "the first to hold it" in p1["reason"]
    assert [g["passed"] for g in p1["gates"]] == [True, True] and "no version holds production" in p1["gates"][1]["note"]
    assert models.resolve("churn@production", near=nb)["version"] == 1
    assert regressions(ss, schedule, first) == []  # no earlier firing of this schedule

    worse = _fire(ss, nb, "k2", {"flip": 0.4})
    assert worse["status"] == "succeeded" and worse["metrics"]["accuracy"] == pytest.approx(0.62)
    p2 = promote_after(ss, schedule, "k2", worse)
    assert not p2["promoted"] and p2["version"] == 2
    assert "0.62" in p2["reason"] and "0.8" in p2["reason"] and "v1" in p2["reason"]  # both values, and who holds the alias
    assert [g["passed"] for g in p2["gates"]] == [True, False]
    assert models.resolve("churn@production", near=nb)["version"] == 1  # nothing moved
    found = {r["metric"]: r for r in regressions(ss, schedule, worse)}
    assert set(found) == {"accuracy", "loss"}  # accuracy fell (goal max), loss rose (goal min)
    assert found["accuracy"]["previous"] == pytest.approx(0.80) and found["accuracy"]["now"] == pytest.approx(0.62)
    assert found["loss"]["now"] > found["loss"]["previous"] and found["loss"]["run"] == first["id"]

    better = _fire(ss, nb, "k3", {"flip": 0.0})
    p3 = promote_after(ss, schedule, "k3", better)
    assert p3["promoted"] and (p3["version"], p3["from"]) == (3, 1)
    assert "0.82" in p3["reason"] and "0.8" in p3["reason"]
    assert models.resolve("churn@production", near=nb)["version"] == 3
    assert regressions(ss, schedule, better) == []  # better than the run before it on both metrics
    history = models.history("churn", near=nb)
    assert [(e["from"], e["to"]) for e in history] == [(None, 1), (1, 3)] and "firing k3" in history[-1]["message"]

    # The same model (train reused from the cache) with a check that did not pass: not promoted.
    flagged = _fire(ss, nb, "k4", {"flip": 0.0, "min_accuracy": 0.99})
    assert flagged["status"] == "succeeded" and "models" not in flagged
    p4 = promote_after(ss, schedule, "k4", flagged)
    assert not p4["promoted"] and p4["version"] == 3 and "evaluate/" in p4["reason"] and "did not pass" in p4["reason"]

    events = ss.events("nightly", kind="promote")
    assert [(e["key"], e["status"]) for e in reversed(events)] == [("k1", "promoted"), ("k2", "refused"), ("k3", "promoted"), ("k4", "refused")]
    assert events[-1]["target"] == "churn@production" and events[-2]["message"] == p2["reason"]
    assert events[-2]["detail"]["gates"][1]["passed"] is False

    again = promote_after(ss, schedule, "k3", better)  # the version that holds the alias: nothing to move
    assert not again["promoted"] and "v3 holds production already" in again["reason"]
    assert len(models.history("churn", near=nb)) == 2


def test_refusals_say_why(nb):
    run = api.run(nb, {"flip": 0.2})
    ss = ScheduleStore(open_store(None, nb))
    strict = {"model": "churn", "alias": "staging", "require": ["accuracy>=0.9"]}
    assert ss.add("strict", notebook=str(nb), trigger={"kind": "every", "seconds": 60}, promote=strict)
    p = promote_after(ss, ss.get("strict"), "k1", run)  # a first model still needs its require gates
    assert not p["promoted"] and "accuracy>=0.9 failed: accuracy is 0.8" in p["reason"]
    assert models.resolve("churn", near=nb).get("aliases") == []

    other = {"model": "other", "alias": "production"}
    assert ss.add("other", notebook=str(nb), trigger={"kind": "every", "seconds": 60}, promote=other)
    p = promote_after(ss, ss.get("other"), "k1", run)
    assert not p["promoted"] and "logged no model 'other'" in p["reason"] and "nbops.log_model(model, 'other')" in p["reason"]
    assert ss.events("other", kind="promote")[0]["status"] == "error"

    failed = api.run(nb, {"flip": 2.0})
    assert failed["status"] == "failed"
    p = promote_after(ss, ss.get("strict"), "k2", failed)
    assert not p["promoted"] and f"run {failed['id']} failed" in p["reason"]
    assert ss.events("strict", kind="promote")[0]["status"] == "refused"

    p = promote_after(ss, ss.get("strict"), "k3", None)  # a firing that failed before its run existed
    assert not p["promoted"] and "no run" in p["reason"] and ss.events("strict", kind="promote")[0]["status"] == "error"

    assert promote_after(ss, {"name": "plain"}, "k", run) == {
        "model": None, "version": None, "alias": "production", "promoted": False, "reason": "the schedule promotes no model", "gates": [], "from": None,
    }  # fmt: skip
