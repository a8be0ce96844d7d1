"""The registry end to end on the embedded store: register from runs of the example
notebooks, promote behind gates, roll back as a stack, the history, load in another
notebook's stage, and a damaged object refused.

Gates and rollback use ``scored``: a small notebook run three times (score 0.6, 0.8, 0.7;
loss = 1 - score, declared goal="min"), each test registering those runs under a model
name of its own, so no test sees another's aliases."""

from __future__ import annotations

import json
import shutil

import pytest

from nbops import api, models
from nbops.errors import CorruptObjectError, NotFoundError, UsageError
from nbops.models import GateError
from nbops.models.registry import load_object, open_registry
from tests.conftest import EXAMPLES, build_notebook, run_cli
from tests.models.conftest import churn_frame

SCORES = (0.6, 0.8, 0.7)
SCORED_CELLS = [
    ("score = 0.5", ["parameters"]),
    ("import nbops\nimport pandas as pd\nfrom sklearn.linear_model import LogisticRegression", ["setup"]),
    (
        "X = pd.DataFrame({'age': [20, 30, 40, 50, 60, 70], 'income': [1.0, 2.5, 3.0, 1.5, 4.0, 2.0]})\n"
        "y = [0, 0, 1, 0, 1, 1]\nmodel = LogisticRegression().fit(X, y)",
        ["stage:train"],
    ),
    (
        "pred = model.predict(X)  # uses the model: it becomes an output of train\n"
        "nbops.log_metric('score', score)\nnbops.log_metric('loss', round(1 - score, 3), goal='min')",
        ["stage:evaluate"],
    ),
]


def _output(nb, run: dict, stage: str, var: str):
    """A stage output of a run, loaded from the store as the registry loads it."""
    rs, _ = open_registry(near=nb)
    meta = next(s for s in rs.get_run(run["id"])["stages"] if s["name"] == stage)["outputs"][var]
    return load_object(rs, meta["sha256"], meta["file"], meta["serializer"], meta.get("bytes"))


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    nb = build_notebook(tmp_path_factory.mktemp("scored"), SCORED_CELLS)
    runs = []
    for score in SCORES:
        run = api.run(nb, {"score": score})
        assert run["status"] == "succeeded", run
        runs.append(run["id"])
    return nb, runs


def _fresh(scored, name: str) -> None:
    """``name`` v1, v2, v3 from the runs with score 0.6, 0.8, 0.7."""
    nb, runs = scored
    for i, run_id in enumerate(runs, start=1):
        assert models.register(run_id, "train", "model", name, near=nb)["version"] == i


# -- registering from the examples -------------------------------------------------------------
def test_churn_registers_an_sklearn_model_with_its_feature_signature(churn):
    v = churn.version
    expected = churn_frame(churn, 5)
    assert v["flavor"] == "sklearn" and v["extra"]["type"] == "sklearn.ensemble._forest.RandomForestClassifier"
    assert v["signature"] == {"kind": "frame", "columns": [{"name": str(c), "dtype": str(t)} for c, t in expected.dtypes.items()]}
    assert len(v["signature"]["columns"]) == 11 and v["signature"]["columns"][0] == {"name": "tenure_months", "dtype": "int64"}
    assert (v["run_id"], v["stage"], v["var"]) == (churn.run["id"], "train", "model")
    assert set(v["metrics"]) >= {"accuracy", "f1"} and v["params"]["n_estimators"] == 20
    assert v["extra"]["classes"] == [0, 1]
    shown = models.show("churn@production", near=churn.notebook)
    assert shown["version"] == 1 and shown["aliases"] == ["production"]
    assert shown["lineage"]["run_id"] == churn.run["id"] and shown["lineage"]["environment"]


def test_digits_registers_a_torch_module_with_an_array_signature(digits):
    v = digits.version
    assert v["flavor"] == "torch" and v["signature"] == {"kind": "array", "shape": [None, 64], "dtype": "float32"}
    assert v["metrics"]["accuracy"] >= 0.8
    net = models.load("digits@1", near=digits.notebook)
    assert type(net).__name__ == "Sequential"


def test_sales_fanin_has_no_model_and_the_refusal_says_why(tmp_path):
    nb = tmp_path / "sales_fanin.ipynb"
    shutil.copy(EXAMPLES / "sales_fanin.ipynb", nb)
    run = api.run(nb, {"n_orders": 500})
    assert run["status"] == "succeeded"
    with pytest.raises(UsageError) as err:
        models.register(run["id"], "join", "weekly", "sales", near=nb)
    assert "weekly of stage join" in str(err.value) and "DataFrame" in str(err.value) and "not a model" in str(err.value)
    assert "sklearn" in err.value.fix and "torch" in err.value.fix and "callable" in err.value.fix
    proc = run_cli("models", "register", run["id"], "--stage", "join", "--var", "nope", "--name", "sales", "--notebook", str(nb))
    assert proc.returncode == 2 and "has no output 'nope'" in proc.stderr and "weekly" in proc.stderr
    assert models.list_models(near=nb) == []  # nothing was half-registered


# -- promotion gates -------------------------------------------------------------------------
def test_require_passes_and_fails_with_both_values(scored):
    nb, _ = scored
    _fresh(scored, "req")
    # Fitted in the same stage that built X: the signature has X's own dtypes.
    assert models.resolve("req@1", near=nb)["signature"]["columns"] == [{"name": "age", "dtype": "int64"}, {"name": "income", "dtype": "float64"}]
    moved = models.promote("req", 1, "production", require=["score>=0.5", "loss<0.5"], near=nb)
    assert moved["from"] is None and moved["to"] == 1 and [g["passed"] for g in moved["gates"]] == [True, True]
    with pytest.raises(GateError) as err:
        models.promote("req", 3, "production", require=["score>=0.75"], near=nb)
    assert "score>=0.75" in str(err.value) and "0.7" in str(err.value)
    assert models.resolve("req@production", near=nb)["version"] == 1  # nothing moved
    assert len(models.history("req", near=nb)) == 1
    with pytest.raises(GateError, match="recorded no metric 'auc'"):
        models.promote("req", 2, "production", require=["auc>=0.5"], near=nb)
    with pytest.raises(UsageError, match="cannot read the gate"):
        models.promote("req", 2, "production", require=["score is good"], near=nb)
    proc = run_cli("models", "promote", "req", "3", "--alias", "production", "--require", "score>=0.75", "--notebook", str(nb))
    assert proc.returncode == 1 and "score>=0.75" in proc.stderr and "0.7" in proc.stderr, proc.stderr
    proc = run_cli("models", "promote", "req", "2", "--alias", "production", "--require", "score>=0.75", "--notebook", str(nb), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["from"] == 1 and json.loads(proc.stdout)["to"] == 2


def test_better_than_reads_each_metrics_goal(scored):
    nb, _ = scored
    _fresh(scored, "better")
    first = models.promote("better", 1, "production", better_than="production", near=nb)
    assert first["gates"][0]["passed"] and "no version holds production yet" in first["gates"][0]["note"]
    up = models.promote("better", 2, "production", better_than="production", near=nb)  # score 0.8 > 0.6 and loss 0.2 < 0.4
    assert {g["metric"]: g["goal"] for g in up["gates"]} == {"loss": "min", "score": "max"}
    with pytest.raises(GateError) as err:  # v3: score 0.7 is not above 0.8, loss 0.3 is not below 0.2
        models.promote("better", 3, "production", better_than="production", near=nb)
    text = str(err.value)
    assert "score of v3 is 0.7, not above v2's 0.8" in text and "loss of v3 is 0.3, not below v2's 0.2" in text
    assert models.resolve("better@production", near=nb)["version"] == 2
    # Only the metrics a --require names are compared when both are given.
    with pytest.raises(GateError) as err:
        models.promote("better", 1, "production", require=["loss<=0.5"], better_than="production", near=nb)
    assert "loss of v1 is 0.4, not below v2's 0.2" in str(err.value) and "score" not in str(err.value).replace("loss", "")
    proc = run_cli("models", "promote", "better", "3", "--alias", "production", "--require-better-than", "production", "--notebook", str(nb))
    assert proc.returncode == 1 and "not above v2's 0.8" in proc.stderr


# -- rollback and history ----------------------------------------------------------------------
def test_rollback_is_a_stack_and_history_says_who_when_why(scored, monkeypatch):
    nb, _ = scored
    _fresh(scored, "stack")
    for version, user in ((1, "ana"), (2, "ben"), (3, "ana")):
        monkeypatch.setenv("NBOPS_USER", user)
        models.promote("stack", version, "production", message=f"ship v{version}", near=nb)
    monkeypatch.setenv("NBOPS_USER", "carla")
    assert models.rollback("stack", "production", message="v3 misbehaves", near=nb)["to"] == 2
    assert models.rollback("stack", "production", near=nb) == {"name": "stack", "alias": "production", "from": 2, "to": 1, "gates": []}
    with pytest.raises(UsageError, match="stack@production has no earlier version"):
        models.rollback("stack", "production", near=nb)
    assert models.resolve("stack@production", near=nb)["version"] == 1
    events = models.history("stack", near=nb)
    assert [(e["action"], e["from"], e["to"], e["user"]) for e in events] == [
        ("promote", None, 1, "ana"),
        ("promote", 1, 2, "ben"),
        ("promote", 2, 3, "ana"),
        ("rollback", 3, 2, "carla"),
        ("rollback", 2, 1, "carla"),
    ]
    assert events[0]["message"] == "ship v1" and events[3]["message"] == "v3 misbehaves"
    assert all(e["at"] and e["at"][:2] == "20" for e in events) and events == sorted(events, key=lambda e: e["at"])
    # A promotion after rollbacks pushes again: rolling back returns to where the alias was.
    models.promote("stack", 3, "production", near=nb)
    assert models.rollback("stack", "production", near=nb)["to"] == 1
    models.promote("stack", 1, "production", near=nb)  # the version it holds: nothing to go back to
    with pytest.raises(UsageError, match="no earlier version"):
        models.rollback("stack", "production", near=nb)
    proc = run_cli("models", "history", "stack", "--notebook", str(nb))
    assert proc.returncode == 0 and "carla" in proc.stdout and "v3 misbehaves" in proc.stdout
    proc = run_cli("models", "rollback", "stack", "--alias", "staging", "--notebook", str(nb))
    assert proc.returncode == 2 and "stack@staging has no earlier version" in proc.stderr


def test_bad_references_are_clear_errors(scored, churn):
    nb, _ = scored
    _fresh(scored, "refs")
    with pytest.raises(NotFoundError, match="no model 'other'"):
        models.promote("other", 1, "production", near=nb)
    models.register(scored[1][0], "train", "model", "other", near=nb)
    with pytest.raises(UsageError, match="refs@2 is a version of refs, not of other"):
        models.promote("other", "refs@2", "production", near=nb)
    with pytest.raises(NotFoundError, match="model refs has no version 9") as err:
        models.promote("refs", 9, "production", near=nb)
    assert "1 to 3" in err.value.fix
    with pytest.raises(NotFoundError, match="model refs has no alias 'nosuch'"):
        models.load("refs@nosuch", near=nb)
    for bad in ("bad name", "../up", ""):
        with pytest.raises(UsageError, match="invalid"):
            models.resolve(bad, near=nb)
    with pytest.raises(UsageError, match="reads as a version"):
        models.promote("refs", 1, "42", near=nb)
    cases = [
        (["promote", "nosuch", "1", "--alias", "production"], 2, "no model 'nosuch'"),
        (["promote", "refs", "9", "--alias", "production"], 2, "has no version 9"),
        (["promote", "other", "refs@2", "--alias", "production"], 2, "is a version of refs, not of other"),
        (["promote", "refs", "1", "--alias", "latest"], 2, "reads as a version"),
        (["show", "refs@nosuch"], 2, "no alias 'nosuch'"),
        (["show", "bad/name"], 2, "invalid model name"),
        (["history", "nosuch"], 2, "no model 'nosuch'"),
        (["register", scored[1][0], "--stage", "nostage", "--var", "model", "--name", "refs"], 2, "has no stage 'nostage'"),
    ]
    for args, code, text in cases:
        proc = run_cli("models", *args, "--notebook", str(nb))
        assert proc.returncode == code and text in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


# -- loading -------------------------------------------------------------------------------
def test_a_stage_of_another_notebook_loads_the_model_by_alias(churn):
    """A second notebook beside churn.ipynb: its kernel finds the same store, and its
    predictions are exactly those of the model loaded here."""
    rows = churn_frame(churn, 40)
    rows.to_parquet(churn.folder / "score_rows.parquet")
    nb = build_notebook(
        churn.folder,
        [
            ("import pandas as pd\nimport nbops", ["setup"]),
            ("X = pd.read_parquet('score_rows.parquet')\nmodel = nbops.models.load('churn@production')\nproba = model.predict_proba(X)", ["stage:score"]),
            ("churners = int((proba[:, 1] > 0.5).sum())  # uses proba: it becomes an output of score", ["stage:count"]),
        ],
        name="score_with_churn.ipynb",
    )
    run = api.run(nb)
    assert run["status"] == "succeeded", run
    in_stage = _output(nb, run, "score", "proba")
    here = models.load("churn@production", near=churn.notebook).predict_proba(rows)
    assert in_stage.shape == (40, 2) and (in_stage == here).all()


def test_a_damaged_object_is_refused_not_unpickled(scored):
    nb, runs = scored
    _fresh(scored, "damaged")
    v = models.resolve("damaged@1", near=nb)
    models.load("damaged@1", near=nb)  # a first load keeps a local copy (a hard link on this store)
    rs, _ = open_registry(near=nb)
    path = rs.objects.path(v["sha256"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the hash can tell
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    try:
        with pytest.raises(CorruptObjectError, match=v["sha256"][:12]):
            models.load("damaged@1", near=nb)
    finally:
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    import pandas as pd

    assert models.load("damaged@1", near=nb).predict(pd.DataFrame({"age": [30], "income": [2.0]})).shape == (1,)
