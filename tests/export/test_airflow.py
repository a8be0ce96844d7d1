"""nbops export --to airflow: the DAG loads in Airflow's own DagBag with the stage
graph, schedule, parameters and resources mapped, and `airflow dags test` runs the
churn example end to end through papermill."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, run_cli
from tests.export.notebooks import broken_notebook, resources_notebook

PAPERMILL = str(Path(sys.executable).parent / "papermill")  # nbops's venv: its kernel has nbops, pandas, scikit-learn


def export(nb: Path, dags: Path, *args: str):
    return run_cli("export", str(nb), "--to", "airflow", "-o", str(dags), *args)


def test_dag_structure_schedule_and_resources(airflow, tmp_path):
    nb = resources_notebook(tmp_path / "src")
    dags = tmp_path / "dags"
    proc = export(nb, dags, "--cron", "30 2 * * *", "--tz", "Europe/Berlin", "-p", "rows=20", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["dag_id"] == "res" and out["operator"] == "BashOperator"
    assert sorted(p.name for p in (dags / "res" / "stages").iterdir()) == ["prep.ipynb", "report.ipynb", "train.ipynb"]

    bag = airflow.dagbag(dags)
    assert bag["import_errors"] == {}
    dag = bag["dags"]["res"]
    assert dag["schedule"] == "30 2 * * *" and dag["timezone"] == "Europe/Berlin"
    assert dag["params"] == {"rows": 20, "label": "x"}
    tasks = dag["tasks"]
    assert set(tasks) == {"prep", "train", "report"}
    assert tasks["prep"]["upstream"] == [] and tasks["train"]["upstream"] == ["prep"] and tasks["report"]["upstream"] == ["train"]
    assert all(t["type"] == "BashOperator" for t in tasks.values())
    assert tasks["prep"]["retries"] == 2 and tasks["prep"]["timeout_s"] == 600
    assert tasks["train"]["pool"] == "nbops_gpu" and tasks["train"]["pool_slots"] == 1
    assert tasks["report"]["pool"] != "nbops_gpu" and tasks["report"]["retries"] == 0 and tasks["report"]["timeout_s"] is None
    # the KubernetesExecutor's pod_override: requests and limits from the tags
    assert tasks["prep"]["executor_resources"]["requests"] == {"cpu": "2", "memory": "2Gi"}
    assert tasks["train"]["executor_resources"]["limits"] == {"memory": "512Mi", "nvidia.com/gpu": "1"}
    assert "executor_resources" not in tasks["report"]


def test_image_gives_kubernetes_pods_with_resources(airflow, tmp_path):
    nb = resources_notebook(tmp_path / "src")
    dags = tmp_path / "dags"
    proc = export(nb, dags, "--image", "registry.example/team/nbops:1", "--pvc", "nbops-shared", "-p", "rows=12")
    assert proc.returncode == 0, proc.stderr
    shared = tmp_path / "volume"  # stands for the claim every pod mounts at the artifact root
    bag = airflow.dagbag(dags, run_id="manual__2026-11-30T00:00:00+00:00", env={"NBOPS_ARTIFACT_ROOT": str(shared)})
    assert bag["import_errors"] == {} and list(bag["dags"]) == ["res"]  # runner.py beside it is not parsed as a DAG
    tasks = bag["dags"]["res"]["tasks"]
    assert {t["type"] for t in tasks.values()} == {"KubernetesPodOperator"}
    assert tasks["prep"]["image"] == "registry.example/team/nbops:1"
    assert tasks["prep"]["container_resources"]["requests"] == {"cpu": "2", "memory": "2Gi"}
    assert tasks["prep"]["container_resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}
    assert tasks["train"]["container_resources"]["limits"] == {"memory": "512Mi", "nvidia.com/gpu": "1"}
    assert tasks["train"]["labels"].get("team") == "ml"
    assert tasks["prep"]["retries"] == 2 and tasks["prep"]["timeout_s"] == 600
    assert tasks["report"]["upstream"] == ["train"]

    # What each pod would run, as Airflow renders it, run here in order with nbops's python as python3.
    commands = bag["dags"]["res"]["commands"]
    for name in ("prep", "train", "report"):
        command = [sys.executable if c == "python3" else c for c in commands[name]]
        run = subprocess.run(command, cwd=nb.parent, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f"{name}: {run.stdout[-2000:]} {run.stderr[-2000:]}"
    (artifacts,) = list((shared / "res").glob("*/artifacts"))
    assert artifacts.parent.name == "manual__2026-11-30T00-00-00_00-00"  # one folder per run, its id file-name safe
    prep = json.loads((artifacts / "prep" / "executed.ipynb").read_text())
    assert "rows = 12" in "".join("".join(c["source"]) for c in prep["cells"])  # the DAG's parameter, injected
    assert json.loads((artifacts / "train" / "scalars.json").read_text()) == {"total": 66}  # prep's data reached train


def _add_schedule(nb: Path, name: str, trigger: dict, params: dict) -> None:
    from nbops.store.location import open_store
    from nbops.store.schedules import ScheduleStore

    assert ScheduleStore(open_store(None, nb)).add(name, notebook=str(nb), trigger=trigger, params=params)


def test_schedule_from_the_store(airflow, tmp_path):
    nb = resources_notebook(tmp_path / "src")
    _add_schedule(nb, "nightly", {"kind": "cron", "cron": "0 3 * * *", "tz": "America/New_York"}, {"rows": 7})
    _add_schedule(nb, "often", {"kind": "every", "seconds": 600}, {})
    _add_schedule(nb, "ondata", {"kind": "on_change", "watch": ["data/*.csv"], "debounce": 1.0}, {})

    dags = tmp_path / "dags"
    assert export(nb, dags, "--schedule", "nightly", "-p", "label=y").returncode == 0
    assert export(nb, dags, "--schedule", "often", "--dag-id", "res_often").returncode == 0
    bag = airflow.dagbag(dags)
    assert bag["import_errors"] == {}
    nightly, often = bag["dags"]["res"], bag["dags"]["res_often"]
    assert nightly["schedule"] == "0 3 * * *" and nightly["timezone"] == "America/New_York"
    assert nightly["params"] == {"rows": 7, "label": "y"}  # the schedule's parameters, then -p
    assert often["schedule"] == 600

    proc = export(nb, tmp_path / "dags2", "--schedule", "ondata")
    assert proc.returncode == 2 and "data change" in proc.stderr and "--cron" in proc.stderr
    assert not (tmp_path / "dags2").exists()
    proc = export(nb, tmp_path / "dags2", "--schedule", "nope")
    assert proc.returncode != 0 and "no schedule named 'nope'" in proc.stderr


def test_reexport_replaces_whole_and_a_failed_one_changes_nothing(tmp_path):
    nb = resources_notebook(tmp_path / "src")
    dags = tmp_path / "dags"
    assert export(nb, dags, "-p", "rows=1").returncode == 0
    assert export(nb, dags, "-p", "rows=2").returncode == 0
    before = {p.relative_to(dags): p.read_bytes() for p in dags.rglob("*") if p.is_file()}
    assert "'rows': 2" in (dags / "res.py").read_text()
    assert export(nb, dags, "-p", "rows=2").returncode == 0  # deterministic: the same export, byte for byte
    assert {p.relative_to(dags): p.read_bytes() for p in dags.rglob("*") if p.is_file()} == before

    bad = broken_notebook(tmp_path / "src")
    proc = export(bad, dags, "--dag-id", "res")
    assert proc.returncode == 2 and "reads 'x'" in proc.stderr
    after = {p.relative_to(dags): p.read_bytes() for p in dags.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in dags.iterdir()) == ["res", "res.py"]  # no scratch folders or temporary files left


@pytest.mark.slow
def test_airflow_dags_test_runs_churn_end_to_end(airflow, tmp_path):
    src = tmp_path / "project"
    src.mkdir()
    shutil.copy(EXAMPLES / "churn.ipynb", src / "churn.ipynb")
    artifacts = tmp_path / "artifacts"
    proc = export(src / "churn.ipynb", airflow.dags, "--papermill", PAPERMILL, "--artifacts", str(artifacts),
                  "-p", "n_customers=600", "-p", "n_estimators=10")  # fmt: skip
    assert proc.returncode == 0, proc.stderr

    test = airflow.cli("dags", "test", "churn", "2026-11-30")
    log = test.stdout + test.stderr
    assert test.returncode == 0, log[-5000:]
    assert "state=success" in log, log[-5000:]

    (run,) = list((artifacts / "churn").iterdir())  # one folder for the one DAG run
    executed = {p.stem: json.loads(p.read_text()) for p in (run / "notebooks").glob("*.ipynb")}
    assert set(executed) == {"load", "features", "train", "evaluate"}
    for name, doc in executed.items():  # papermill ran every cell, none raised
        code = [c for c in doc["cells"] if c["cell_type"] == "code"]
        assert all(c["execution_count"] for c in code), name
        assert not [o for c in code for o in c["outputs"] if o.get("output_type") == "error"], name
    load_src = "".join("".join(c["source"]) for c in executed["load"]["cells"])
    assert "n_customers = 600" in load_src  # the DAG's parameter reached the stage (papermill's injected cell)
    metrics = [json.loads(line) for line in (run / "artifacts" / "evaluate" / "_nbops" / "metrics.jsonl").read_text().splitlines()]
    values = {m["name"]: m["value"] for m in metrics}
    assert set(values) == {"accuracy", "f1"} and 0.5 < values["accuracy"] <= 1.0
    assert (run / "artifacts" / "train" / "manifest.json").exists()
