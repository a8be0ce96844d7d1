"""Sweeps: the space grammar, and real sweeps on real kernels.

Fixture: ``notebooks/sweep.ipynb``: a slow ``prepare`` stage (sleeps 1 s,
reads only ``n_rows``) and a fast ``train`` stage reading the swept ``lr``,
``model``, ``depth`` (it raises for depth > 10). No ``import nbops``: the
objectives are scalar variables named as metrics.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nbops import api, sweep
from nbops.errors import NotFoundError, ParameterError, UsageError
from nbops.spec import ParamSpec

NB_DIR = Path(__file__).resolve().parent / "notebooks"
DECLARED = {
    "lr": ParamSpec(0.01, "float"), "depth": ParamSpec(3, "int"), "model": ParamSpec("rf", "str"),
    "flag": ParamSpec(False, "bool"), "sizes": ParamSpec([1], "list"),
}  # fmt: skip
SPACE = ["lr=loguniform(1e-4,1e-1)", "model=choice(rf,gbm)", "depth=int(2,12)"]
OBJECTIVES = ["accuracy:max", "latency_ms:min"]


# -- grammar (no kernels) -----------------------------------------------------------------------


def test_space_kinds_and_values_typed_by_the_declared_parameter():
    dims = {d.name: d for d in sweep.parse_space([*SPACE, "flag=choice(true, false)"], DECLARED)}
    assert (dims["lr"].kind, dims["lr"].low, dims["lr"].high, dims["lr"].log) == ("loguniform", 1e-4, 1e-1, True)
    assert dims["model"].choices == ("rf", "gbm")
    assert (dims["depth"].kind, dims["depth"].low, dims["depth"].high, dims["depth"].log) == ("int", 2, 12, False)
    assert dims["flag"].choices == (True, False)
    assert sweep.parse_dimension("depth=choice(3, 5)", DECLARED).choices == (3, 5)  # ints, not "3"
    assert sweep.parse_dimension("depth=int(8,512,log)", DECLARED).log is True
    assert sweep.parse_dimension("lr=uniform(0, 1)", DECLARED).kind == "uniform"
    assert sweep.parse_dimension("model=choice('a', \"b c\")", DECLARED).choices == ("a", "b c")  # quotes stripped


@pytest.mark.parametrize(
    "text, error, words",
    [
        ("lr=__import__('os').system('id')", UsageError, "unknown kind '__import__'"),
        ("lr loguniform 1 2", UsageError, "not name=kind(args)"),
        ("lr=exp(1,2)", UsageError, "unknown kind"),
        ("nope=uniform(0,1)", ParameterError, "no parameter nope"),
        ("depth=uniform(1,5)", ParameterError, "is an int"),
        ("model=int(1,3)", ParameterError, "not a number"),
        ("lr=loguniform(0,1)", UsageError, "low > 0"),
        ("lr=uniform(1,0)", UsageError, "low must be below high"),
        ("depth=int(2,x)", UsageError, "not an integer"),
        ("depth=choice(3,three)", ParameterError, "is an int"),
        ("sizes=choice([1],[2])", UsageError, "numbers, strings, booleans"),
    ],
)
def test_bad_space_is_an_error_naming_it(text, error, words):
    with pytest.raises(error) as info:
        sweep.parse_dimension(text, DECLARED)
    assert words in info.value.message


def test_objectives_and_constraints():
    assert sweep.parse_objective("accuracy:max") == sweep.Objective("accuracy", "maximize")
    assert sweep.parse_objective("val:loss:min") == sweep.Objective("val:loss", "minimize")
    with pytest.raises(UsageError):
        sweep.parse_objective("accuracy")
    c = sweep.parse_constraint("latency_ms<=100")
    assert (c.metric, c.op, c.bound) == ("latency_ms", "<=", 100.0)
    assert c.value({"latency_ms": 84}) == -16 and c.satisfied(-16) and not c.satisfied(6)
    g = sweep.parse_constraint("accuracy >= 0.8")
    assert g.value({"accuracy": 0.9}) == pytest.approx(-0.1)
    with pytest.raises(UsageError):
        sweep.parse_constraint("latency_ms<=fast")


def test_pareto_front_keeps_the_non_dominated():
    objs = [sweep.Objective("a", "maximize"), sweep.Objective("b", "minimize")]
    ts = [{"n": i, "values": {"a": a, "b": b}} for i, (a, b) in enumerate([(0.9, 50), (0.8, 40), (0.7, 60), (0.95, 90)])]
    assert [t["n"] for t in sweep.pareto_front(ts, objs)] == [0, 1, 3]


# -- real sweeps ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("sweep")
    shutil.copy(NB_DIR / "sweep.ipynb", dest / "sweep.ipynb")
    return dest


@pytest.fixture(scope="module")
def first(work):
    """5 trials, 2 at a time, two objectives and a constraint."""
    return sweep.run_sweep(
        work / "sweep.ipynb", space=SPACE, objectives=OBJECTIVES, constraints=["latency_ms<=100"],
        trials=5, parallel=2, study="s", store=work / "store", seed=7,
    )  # fmt: skip


def _runs(work, numbers_to_ids):
    return {n: api.get_run(rid, store=work / "store") for n, rid in numbers_to_ids.items()}


def test_every_trial_is_a_run_of_the_study(first, work):
    assert [t["number"] for t in first["trials"]] == [0, 1, 2, 3, 4]
    assert first["session"]["trials"] == [0, 1, 2, 3, 4] and not first["session"]["interrupted"]
    for t in first["trials"]:
        run = api.get_run(t["run_id"], store=work / "store")
        assert (run["kind"], run["study"], run["trial"]) == ("trial", "s", t["number"])
        assert {k: run["params"][k] for k in t["params"]} == t["params"]
        if t["params"]["depth"] > 10:  # the stage raises
            assert t["state"] == "FAIL" and run["status"] == "failed" and "too deep" in t["error"]
        else:
            assert t["state"] == "COMPLETE" and run["status"] == "succeeded"
            assert t["values"] == {"accuracy": run["metrics"]["accuracy"], "latency_ms": run["metrics"]["latency_ms"]}
            assert t["feasible"] == (run["metrics"]["latency_ms"] <= 100)
    assert len(api.list_runs(store=work / "store", study="s")) == 5


def test_the_upstream_stage_is_cached_in_every_trial_after_the_first(first, work):
    assert first["session"]["shared_stages"] == ["prepare"]
    prepare = {t["number"]: next(s for s in api.get_run(t["run_id"], store=work / "store")["stages"] if s["name"] == "prepare")
               for t in first["trials"]}  # fmt: skip
    assert prepare[0]["status"] == "succeeded"
    first_run = first["trials"][0]["run_id"]
    for n in (1, 2, 3, 4):
        assert prepare[n]["status"] == "cached", n
        assert prepare[n]["cached_from"] == first_run
    assert first["session"]["cache"]["prepare"] == {"cached": 4, "ran": 1}


def test_best_is_the_feasible_pareto_front(first):
    assert first["multi_objective"] is True
    complete = [t for t in first["trials"] if t["state"] == "COMPLETE"]
    assert complete, "the sampler proposed no feasible depth at all"
    feasible = [t for t in complete if t["feasible"]]
    assert {t["number"] for t in first["best"]} == {t["number"] for t in sweep.pareto_front(feasible, [
        sweep.Objective("accuracy", "maximize"), sweep.Objective("latency_ms", "minimize")])}  # fmt: skip
    assert all(t["feasible"] for t in first["best"])


def test_a_failing_trial_is_told_fail_and_the_sweep_goes_on(work):
    out = sweep.run_sweep(work / "sweep.ipynb", space=["depth=choice(11,12)"], objectives=["accuracy:max"],
                          trials=2, study="too-deep", store=work / "store")  # fmt: skip
    assert [t["state"] for t in out["trials"]] == ["FAIL", "FAIL"]
    for t in out["trials"]:
        assert "stage train failed" in t["error"] and "ValueError: depth" in t["error"]
        assert api.get_run(t["run_id"], store=work / "store")["status"] == "failed"
    assert out["best"] == []


def test_resume_adds_trials_to_the_same_study(first, work):
    out = sweep.run_sweep(work / "sweep.ipynb", study="s", resume=True, trials=2, store=work / "store")
    assert [t["number"] for t in out["trials"]] == [0, 1, 2, 3, 4, 5, 6]
    assert out["session"]["trials"] == [5, 6]
    assert out["objectives"] == first["objectives"] and out["constraints"] == first["constraints"]
    assert len(api.list_runs(store=work / "store", study="s")) == 7
    for t in out["trials"][5:]:
        run = api.get_run(t["run_id"], store=work / "store")
        assert run["trial"] == t["number"] and run["study"] == "s"
        assert next(s for s in run["stages"] if s["name"] == "prepare")["status"] == "cached"


def test_resume_and_new_study_mistakes(first, work):
    with pytest.raises(NotFoundError):
        sweep.run_sweep(work / "sweep.ipynb", study="never", resume=True, trials=1, store=work / "store")
    with pytest.raises(UsageError, match="already exists"):
        sweep.run_sweep(work / "sweep.ipynb", space=SPACE, objectives=OBJECTIVES, study="s", trials=1, store=work / "store")
    with pytest.raises(UsageError, match="a study keeps them"):
        sweep.run_sweep(work / "sweep.ipynb", space=["lr=uniform(0.1,0.2)"], study="s", resume=True, trials=1, store=work / "store")


def test_the_study_is_recorded_in_the_store(first, work):
    spec = api.open_store(work / "store", work).get_study("s")
    assert spec["storage"] == f"sqlite:///{(work / 'store').resolve() / 'optuna.db'}"
    assert [d["text"] for d in spec["space"]] == SPACE
    assert spec["objectives"] == [{"name": "accuracy", "direction": "maximize"}, {"name": "latency_ms", "direction": "minimize"}]
    assert spec["constraints"][0]["text"] == "latency_ms<=100"
    assert spec["notebook"] == str((work / "sweep.ipynb").resolve())


def test_sweep_show_json_shape(first, work, cli):
    proc = cli("sweep", "show", "s", "--store", str(work / "store"), "--json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert {"study", "notebook", "storage", "dashboard", "space", "objectives", "constraints", "multi_objective",
            "counts", "best", "trials"} <= set(shown)  # fmt: skip
    assert shown["dashboard"] == f"optuna-dashboard {shown['storage']}"
    assert sum(shown["counts"].values()) == len(shown["trials"]) >= 5
    for t in shown["trials"]:
        assert {"number", "state", "params", "values", "metrics", "run_id", "feasible", "error", "constraint"} <= set(t)
    for t in shown["best"]:
        assert t["state"] == "COMPLETE" and t["run_id"] and set(t["values"]) == {"accuracy", "latency_ms"}
    text = cli("sweep", "show", "s", "--store", str(work / "store"), cwd=work)
    assert text.returncode == 0 and "Pareto front" in text.stdout and "optuna-dashboard sqlite:///" in text.stdout
    missing = cli("sweep", "show", "nope", "--store", str(work / "store"), cwd=work)
    assert missing.returncode == 2 and "no study 'nope'" in missing.stderr


def test_sweep_cli_bad_space_exits_2(work, cli):
    proc = cli("sweep", str(work / "sweep.ipynb"), "--space", "lr=eval(1)", "--objective", "accuracy:max", "--store", str(work / "store"), cwd=work)
    assert proc.returncode == 2 and "unknown kind 'eval'" in proc.stderr
