"""The model registry on a team store (PostgreSQL + S3 on moto): register, promote, history
and load as on the embedded store; eight processes registering at once get eight distinct
versions; processes promoting at once leave a history whose every ``from`` is the true
previous holder."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pandas as pd
import pytest

from nbops import api, models
from nbops.models.registry import open_registry
from tests.conftest import build_notebook, run_cli

TEAM = pytest.mark.parametrize("store_backend", ["pg-s3"], indirect=True)
CELLS = [
    ("c = 1.0", ["parameters"]),
    ("import nbops\nimport pandas as pd\nfrom sklearn.linear_model import LogisticRegression", ["setup"]),
    (
        "X = pd.DataFrame({'age': [20, 30, 40, 50, 60, 70], 'income': [1.0, 2.5, 3.0, 1.5, 4.0, 2.0]})\n"
        "y = [0, 0, 1, 0, 1, 1]\nmodel = LogisticRegression(C=c).fit(X, y)",
        ["stage:train"],
    ),
    ("acc = float(model.score(X, y))\nnbops.log_metric('acc', acc)", ["stage:evaluate"]),
    # A model that loads without importing scikit-learn: the tests that start eight
    # processes register this one, so they time the registry, not eight imports of scipy.
    ("import functools, operator\ndouble = functools.partial(operator.mul, 2.0)", ["stage:light"]),
    ("assert double(3.0) == 6.0", ["stage:use_light"]),
]
ROWS = pd.DataFrame({"age": [25, 65], "income": [1.2, 3.9]})
# Each process imports first, then waits for the parent's go, so the writes really overlap.
_AT_ONCE = """
import faulthandler, os, sys, time
from nbops import models
faulthandler.dump_traceback_later(240, exit=True)  # a hang shows where it hangs
gate, ready, action, *args = sys.argv[1:]
open(ready, "w").close()
while not os.path.exists(gate):
    time.sleep(0.005)
if action == "register":
    print(models.register(args[0], "light", "double", args[1], near=args[2])["version"])
else:
    print(models.promote(args[0], int(args[1]), "production", message=f"process {args[1]}", near=args[2])["from"])
"""


@pytest.fixture
def team(store_backend, tmp_path, monkeypatch):
    """A trained run in the team store; NBOPS_STORE/NBOPS_OBJECTS point here and at children."""
    for key, value in store_backend.env.items():
        monkeypatch.setenv(key, value)
    nb = build_notebook(tmp_path, CELLS)
    run = api.run(nb)
    assert run["status"] == "succeeded", run
    return nb, run["id"], store_backend.env


def _at_once(nb, *calls: list[str]) -> list[str]:
    """Run the calls in one process each, released together once every one has imported
    nbops (however slow the machine); their stdout. Output goes to files, not pipes, so a
    child never blocks on a pipe nobody reads yet."""
    gate = nb.parent / "go"
    logs = [(nb.parent / f"proc{i}.out", nb.parent / f"proc{i}.err") for i in range(len(calls))]
    procs = []
    for i, call in enumerate(calls):
        with logs[i][0].open("w") as out, logs[i][1].open("w") as err:
            argv = [sys.executable, "-X", "faulthandler", "-c", _AT_ONCE, str(gate), str(nb.parent / f"proc{i}.ready"), *call, str(nb)]
            procs.append(subprocess.Popen(argv, stdout=out, stderr=err))
    deadline = time.monotonic() + 300
    while not all((nb.parent / f"proc{i}.ready").exists() for i in range(len(calls))):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [e.read_text() for _, e in logs]
        time.sleep(0.05)
    gate.touch()
    for p, (_, err) in zip(procs, logs, strict=True):
        assert p.wait(timeout=300) == 0, err.read_text()
    return [out.read_text().strip() for out, _ in logs]


@TEAM
def test_register_promote_history_and_load_on_the_team_store(team, monkeypatch):
    nb, run_id, env = team
    bob = {**env, "NBOPS_USER": "bob"}
    rs, _ = open_registry(near=nb)
    assert not rs.db.is_sqlite and getattr(rs.objects, "materialize_verifies", False)  # PostgreSQL, objects in the bucket
    v1 = models.register(run_id, "train", "model", "team", message="first", near=nb)
    assert v1["version"] == 1 and v1["signature"]["columns"][0] == {"name": "age", "dtype": "int64"}
    proc = run_cli("models", "register", run_id, "--stage", "train", "--var", "model", "--name", "team", "--json", cwd=nb.parent, env=bob)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["version"] == 2 and json.loads(proc.stdout)["created_by"] == "bob"
    monkeypatch.setenv("NBOPS_USER", "ana")
    models.promote("team", 1, "production", message="ship it", require=["acc>=0.5"], near=nb)
    proc = run_cli("models", "promote", "team", "2", "--alias", "production", "-m", "newer", "--json", cwd=nb.parent, env=bob)
    assert proc.returncode == 0, proc.stderr
    assert models.rollback("team", "production", near=nb)["to"] == 1
    history = models.history("team", near=nb)
    assert [(e["action"], e["from"], e["to"], e["user"], e["message"]) for e in history] == [
        ("promote", None, 1, "ana", "ship it"),
        ("promote", 1, 2, "bob", "newer"),
        ("rollback", 2, 1, "ana", None),
    ]
    assert history[0]["gates"][0]["gate"] == "acc>=0.5"
    proc = run_cli("models", "ls", "--json", cwd=nb.parent, env=env)
    assert proc.returncode == 0 and json.loads(proc.stdout)[0]["aliases"] == {"production": 1}
    # The bytes come from the bucket, checked against their hash.
    model = models.load("team@production", near=nb)
    assert model.predict_proba(ROWS).shape == (2, 2)


@TEAM
def test_eight_processes_registering_at_once_get_eight_versions(team):
    nb, run_id, _ = team
    versions = _at_once(nb, *[["register", run_id, "busy"] for _ in range(8)])
    assert sorted(int(v) for v in versions) == list(range(1, 9))
    assert [v["version"] for v in open_registry(near=nb)[1].versions("busy")] == list(range(1, 9))


@TEAM
def test_promotions_at_once_leave_a_true_history(team):
    nb, run_id, _ = team
    for _ in range(4):
        models.register(run_id, "light", "double", "race", near=nb)
    models.promote("race", 1, "production", near=nb)
    previous = _at_once(nb, *[["promote", "race", str(n)] for n in (2, 3, 4)])
    events = models.history("race", near=nb)
    assert len(events) == 4 and sorted(e["to"] for e in events[1:]) == [2, 3, 4]
    for before, after in zip(events, events[1:], strict=False):
        assert after["from"] == before["to"], events  # each move left the version the previous one set
    assert sorted(int(p) for p in previous) == sorted(e["from"] for e in events[1:])
    assert models.resolve("race@production", near=nb)["version"] == events[-1]["to"]
