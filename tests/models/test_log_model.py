"""``nbops.log_model`` inside a stage: a version once the run succeeds (with the whole run's
metrics), none for a failed run, none again when the stage is reused from the cache; the
signature from the input example, or inferred from the DataFrame the stage fitted on."""

from __future__ import annotations

import pandas as pd
import pytest

import nbops
from nbops import api, models
from nbops.errors import UsageError
from tests.conftest import build_notebook

CELLS = [
    ("fail = False\nc = 1.0", ["parameters"]),
    ("import nbops\nimport pandas as pd\nfrom sklearn.linear_model import LogisticRegression", ["setup"]),
    (
        "X = pd.DataFrame({'age': [20, 30, 40, 50, 60, 70], 'income': [1.0, 2.5, 3.0, 1.5, 4.0, 2.0]})\n"
        "y = [0, 0, 1, 0, 1, 1]\n"
        "model = LogisticRegression(C=c).fit(X, y)\n"
        "nbops.log_model(model, 'logged', input_example=X.head(2).astype({'age': 'float32'}), message='from the stage')\n"
        "nbops.log_model(model, 'inferred')",
        ["stage:train"],
    ),
    ("acc = float(model.score(X, y))\nnbops.log_metric('acc', acc)\nassert not fail, 'evaluation failed on purpose'", ["stage:evaluate"]),
]
ROWS = pd.DataFrame({"age": [25, 65], "income": [1.2, 3.9]})


def _latest(nb, name: str) -> int | None:
    return {m["name"]: m["latest"] for m in models.list_models(near=nb)}.get(name)


def test_a_logged_model_becomes_a_version_when_the_run_succeeds(tmp_path):
    nb = build_notebook(tmp_path, CELLS)

    failed = api.run(nb, {"fail": True})
    assert failed["status"] == "failed" and "models" not in failed
    assert models.list_models(near=nb) == []  # train logged both models, but the run failed

    ok = api.run(nb, {"fail": False})  # train is reused from the failed run: its models were never registered
    assert ok["status"] == "succeeded"
    assert sorted((m["name"], m["version"]) for m in ok["models"]) == [("inferred", 1), ("logged", 1)]
    v = models.resolve("logged@1", near=nb)
    assert (v["run_id"], v["stage"], v["source"], v["flavor"], v["message"]) == (ok["id"], "train", "log_model", "sklearn", "from the stage")
    assert v["metrics"]["acc"] == pytest.approx(ok["metrics"]["acc"])  # evaluate ran after train: the whole run's metrics
    assert v["params"] == {"fail": False, "c": 1.0}
    assert v["extra"]["type"] == "sklearn.linear_model._logistic.LogisticRegression" and v["extra"]["classes"] == [0, 1]
    assert v["signature"] == {"kind": "frame", "columns": [{"name": "age", "dtype": "float32"}, {"name": "income", "dtype": "float64"}]}
    # Without an input example: the model's feature names with the dtypes of the frame the stage fitted on.
    inferred = models.resolve("inferred@1", near=nb)
    assert inferred["signature"] == {"kind": "frame", "columns": [{"name": "age", "dtype": "int64"}, {"name": "income", "dtype": "float64"}]}
    loaded = models.load("logged", near=nb)
    assert (loaded.predict_proba(ROWS) == models.load("inferred@1", near=nb).predict_proba(ROWS)).all()

    again = api.run(nb, {"fail": False})  # every stage reused from the cache: nothing new was logged
    assert again["status"] == "succeeded" and "models" not in again
    assert _latest(nb, "logged") == 1 and _latest(nb, "inferred") == 1

    retrained = api.run(nb, {"fail": False, "c": 0.01})  # train runs again: a new version of each
    assert sorted((m["name"], m["version"]) for m in retrained["models"]) == [("inferred", 2), ("logged", 2)]
    v2 = models.resolve("logged@2", near=nb)
    assert v2["run_id"] == retrained["id"] and v2["sha256"] != v["sha256"] and v2["params"]["c"] == 0.01
    assert (models.load("logged@2", near=nb).predict_proba(ROWS) != loaded.predict_proba(ROWS)).any()


def test_outside_a_run_log_model_prints_and_records_nothing(tmp_path, monkeypatch, capsys):
    from sklearn.linear_model import LogisticRegression

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NBOPS_STORE", raising=False)
    model = LogisticRegression().fit(ROWS, [0, 1])
    nbops.log_model(model, "outside", input_example=ROWS)
    assert "not in a run; would register model 'outside' (sklearn)" in capsys.readouterr().out
    assert not (tmp_path / ".nbops").exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(UsageError, match="invalid model name 'no spaces please'"):
        nbops.log_model(model, "no spaces please")
    with pytest.raises(UsageError, match="int is not a model nbops can call") as err:
        nbops.log_model(42, "answer")
    assert "sklearn" in err.value.fix and "torch" in err.value.fix
