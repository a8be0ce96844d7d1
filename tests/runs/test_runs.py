"""Versioned runs on real kernels: cache, failures, resume, parameters, store records."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import nbformat
import pytest

from nbops import api
from nbops.errors import ParameterError
from nbops.store import RunStore, sha256_file

from ..conftest import NBOPS, run_cli


def statuses(run):
    return {s["name"]: s["status"] for s in run["stages"]}


def edit_cell(path: Path, index: int, source: str) -> None:
    nb = json.loads(path.read_text())
    nb["cells"][index]["source"] = source
    path.write_text(json.dumps(nb))


def test_run_cache_edit_and_flip_back(workdir):
    nb = workdir / "kale.ipynb"
    first = api.run(nb)
    assert first["status"] == "succeeded" and set(statuses(first).values()) == {"succeeded"}
    assert first["metrics"] == {"score": pytest.approx(2.5 / 3), "avg": 2.5}

    again = api.run(nb)  # unchanged: nothing runs
    assert set(statuses(again).values()) == {"cached"}
    assert all(s["cached_from"] == first["id"] for s in again["stages"])

    edit_cell(nb, 6, "score = avg / k + 1")  # only the last stage changes
    edited = api.run(nb)
    assert statuses(edited) == {"load": "cached", "train": "cached", "evaluate": "succeeded"}
    assert edited["metrics"]["score"] == pytest.approx(2.5 / 3 + 1)

    other = api.run(nb, {"k": "4"})
    assert statuses(other)["load"] == "succeeded"
    back = api.run(nb, {"k": 3})  # flip back: every version is kept
    assert set(statuses(back).values()) == {"cached"}

    forced = api.run(nb, no_cache=True)
    assert set(statuses(forced).values()) == {"succeeded"}


def test_cache_off_stage_always_runs(workdir):
    nb = workdir / "tags_all.ipynb"
    api.run(nb)
    second = api.run(nb)
    # train reran; its output has the same bytes, so report (keyed on them) is reused
    assert statuses(second) == {"make": "cached", "train": "succeeded", "report": "cached"}


def test_independent_stages_run_in_parallel(workdir):
    run = api.run(workdir / "run_parallel.ipynb", jobs=2)
    s = {x["name"]: x for x in run["stages"]}
    left = (s["left"]["started_at"], s["left"]["ended_at"])
    right = (s["right"]["started_at"], s["right"]["ended_at"])
    assert left[0] < right[1] and right[0] < left[1], (left, right)


def test_failing_stage_skips_downstream_and_keeps_notebook(workdir):
    result = run_cli("run", str(workdir / "run_fail.ipynb"), "--json")
    assert result.returncode == 1
    run = json.loads(result.stdout)
    assert run["status"] == "failed"
    assert statuses(run) == {"a": "succeeded", "b": "failed", "c": "skipped", "d": "succeeded"}
    err = next(s for s in run["stages"] if s["name"] == "b")["error"]
    assert err["ename"] == "ValueError" and err["evalue"] == "boom in b"
    assert err["cell"] == 2 and err["first_line"] == "y = x + 1"
    path = api.stage_notebook(run["id"], "b", path=workdir / "run_fail.ipynb")
    executed = nbformat.read(path, as_version=4)
    assert any("papermill-error-cell-tag" in c.metadata.get("tags", []) for c in executed.cells)
    human = run_cli("run", str(workdir / "run_fail.ipynb"), "--no-cache")
    assert human.returncode == 1 and "Traceback" not in human.stderr
    assert "stage b failed, cell 2" in human.stderr and "ValueError: boom in b" in human.stderr


def test_dead_kernel_fails_the_stage_without_hanging(workdir):
    start = time.time()
    run = api.run(workdir / "run_kernel_dies.ipynb")
    assert time.time() - start < 60
    assert statuses(run) == {"a": "succeeded", "b": "failed", "c": "skipped"}
    assert next(s for s in run["stages"] if s["name"] == "b")["error"]["ename"] == "DeadKernelError"


def test_timeout_and_retries(workdir):
    start = time.time()
    run = api.run(workdir / "run_timeout.ipynb")
    assert time.time() - start < 25
    stage = run["stages"][0]
    assert stage["status"] == "failed" and stage["error"]["ename"] == "TimeoutError"

    retried = api.run(workdir / "run_retry.ipynb")
    assert retried["status"] == "succeeded"
    assert retried["stages"][0]["attempts"] == 2


def test_parameters_are_typed_data_never_code(workdir):
    nb = workdir / "run_params.ipynb"
    evil = "'); import os; os.system('id') #\"\\"
    run = api.run(nb, assignments=["count=7", "rate=1e-3", "enabled=true", "items=[3, 4]", f"name={evil}", "api_token=s3cr3t"])
    seen = json.loads((workdir / "params-seen.json").read_text())
    assert seen == {"count": 7, "rate": 0.001, "name": evil, "enabled": True, "items": [3, 4], "token_len": 6}
    assert run["params"]["api_token"] == "***" and run["params"]["name"] == evil
    assert run["metrics"] == {"count_x2": 14}
    text = api.stage_notebook(run["id"], "echo", path=nb).read_text()
    assert "s3cr3t" not in text
    db = (workdir / ".nbops" / "runs.db").read_bytes()
    assert b"s3cr3t" not in db

    with pytest.raises(ParameterError, match="count is an int, got 'many'"):
        api.run(nb, assignments=["count=many"])
    with pytest.raises(ParameterError, match="unknown parameter colour"):
        api.run(nb, {"colour": "red"})
    before = len(api.list_runs(nb))
    bad = run_cli("run", str(nb), "-p", "count=1.5")
    assert bad.returncode == 2 and "count is an int" in bad.stderr and "Traceback" not in bad.stderr
    assert len(api.list_runs(nb)) == before  # nothing ran


def test_gpu_stages_get_distinct_devices_or_cpu(workdir):
    run = api.run(workdir / "run_gpu.ipynb")
    gpu = next(s for s in run["stages"] if s["name"] == "gpu_stage")
    assert "none available" in gpu["worker"]["gpu_note"] and gpu["scalars"] == {}
    # With GPUs present (declared here), the stage sees its own id, the other stage none.
    from nbops.execute import RunRequest, execute_run
    from nbops.execute.local import LocalExecutor

    prep = api.prepare(workdir / "run_gpu.ipynb")
    with LocalExecutor(jobs=2, cwd=prep.cwd, gpus=["0", "1"]) as ex:
        run_id = execute_run(RunRequest(prep.spec, {}, prep.store, prep.notebook, prep.cwd, no_cache=True), ex)
    stages = {s["name"]: s for s in prep.store.get_run(run_id)["stages"]}
    assert stages["gpu_stage"]["worker"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert stages["cpu_stage"]["worker"]["CUDA_VISIBLE_DEVICES"] == ""


def test_data_inputs_are_hashed_and_invalidate_the_cache(workdir):
    nb = workdir / "run_data_input.ipynb"
    first = api.run(nb)
    load = first["stages"][0]
    assert load["inputs"][0]["path"] == "data/train.csv"
    assert load["inputs"][0]["sha256"] == sha256_file(workdir / "data" / "train.csv")
    assert first["metrics"] == {"rows": 3, "total": 6.0}
    assert set(statuses(api.run(nb)).values()) == {"cached"}
    (workdir / "data" / "train.csv").write_text("value\n1\n2\n3\n4\n")
    changed = api.run(nb)
    assert statuses(changed) == {"load": "succeeded", "stats": "succeeded"}
    assert changed["metrics"]["rows"] == 4


def test_unserializable_output_is_a_clear_stage_error(workdir):
    run = api.run(workdir / "run_unserializable.ipynb")
    err = run["stages"][0]["error"]
    assert err["ename"] == "MarshalError" and "'gen'" in err["evalue"] or "'handle'" in err["evalue"]
    assert "'a'" in err["evalue"] and "'b'" in err["evalue"]


def test_sigkill_mid_stage_then_resume(workdir):
    nb = workdir / "run_slow.ipynb"
    proc = subprocess.Popen([*NBOPS, "run", str(nb), "-p", "seconds=30"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = RunStore(workdir / ".nbops")
    deadline = time.time() + 60
    while time.time() < deadline:
        runs = store.list_runs()
        if runs and any(s["status"] == "running" and s["name"] == "b" for s in runs[0]["stages"]):
            break
        time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("stage b never started")
    time.sleep(1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    runs = api.list_runs(nb)
    assert runs[0]["status"] == "interrupted"
    objects = workdir / ".nbops" / "objects"
    for obj in objects.glob("??/*"):  # no half-written object under a real name
        assert sha256_file(obj) == obj.parent.name + obj.name
    resumed = api.resume(runs[0]["id"], path=nb, params={"seconds": 1.0})
    assert resumed["status"] == "succeeded" and resumed["parent_id"] == runs[0]["id"]
    assert statuses(resumed) == {"a": "cached", "b": "succeeded", "c": "succeeded"}


def test_eight_concurrent_runs_share_one_store(workdir):
    nb = workdir / "kale.ipynb"
    procs = [
        subprocess.Popen([*NBOPS, "run", str(nb), "-p", f"k={k}", "--jobs", "1", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for k in range(1, 9)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    runs = api.list_runs(nb)
    assert len(runs) == 8 and {r["status"] for r in runs} == {"succeeded"}
    for r in runs:
        full = api.get_run(r["id"], path=nb)
        assert {s["status"] for s in full["stages"]} == {"succeeded"}
        assert all(s["notebook_sha256"] and s["cache_key"] for s in full["stages"])


def test_json_shapes_and_run_commands(workdir):
    nb = workdir / "kale.ipynb"
    a = api.run(nb)
    b = api.run(nb, {"k": 5})
    listed = json.loads(run_cli("runs", "ls", "--notebook", str(nb), "--json").stdout)
    assert [r["id"] for r in listed] == [b["id"], a["id"]]
    assert {"id", "status", "started_at"} <= set(listed[0]) and "T" in listed[0]["started_at"]
    shown = json.loads(run_cli("runs", "show", a["id"], "--notebook", str(nb), "--json").stdout)
    assert {"id", "status", "params", "metrics", "stages"} <= set(shown)
    assert {"name", "status"} <= set(shown["stages"][0]) and shown["env"]["python"]
    diff = api.diff_runs(a["id"], b["id"], path=nb)
    assert diff["params"] == {"k": {"a": 3, "b": 5}} and "score" in diff["metrics"]
    opened = run_cli("open", a["id"], "train", "--notebook", str(nb))
    assert opened.returncode == 0 and Path(opened.stdout.strip()).exists()
    rerun = api.rerun(a["id"], path=nb)
    assert rerun["kind"] == "rerun" and rerun["differences"] == []
    assert set(statuses(rerun).values()) == {"succeeded"}
    bad = run_cli("runs", "show", "../../etc", "--notebook", str(nb))
    assert bad.returncode == 2 and "is not a run id" in bad.stderr


def test_metric_flag_records_a_scalar(workdir):
    run = api.run(workdir / "kale.ipynb", metric_names=["avg"])
    assert run["metrics"]["avg"] == 2.5
    assert next(s for s in run["stages"] if s["name"] == "train")["scalars"]["avg"] == 2.5


def test_stages_run_in_the_notebook_folder(workdir):
    # run_data_input reads 'data/train.csv' relative to the notebook, from any cwd
    result = run_cli("run", str(workdir / "run_data_input.ipynb"), cwd=Path("/"))
    assert result.returncode == 0, result.stderr


def test_repeat_checks_reproducibility(workdir):
    ok = run_cli("run", str(workdir / "kale.ipynb"), "--repeat", "2", "--tolerance", "1e-9")
    assert ok.returncode == 0, ok.stderr
    # A stage whose metric is random differs between the two runs -> exit 1, named
    nb = workdir / "kale.ipynb"
    edit_cell(nb, 6, "import random\nscore = avg / k + random.random()")
    bad = run_cli("run", str(nb), "--repeat", "2")
    assert bad.returncode == 1 and "not reproducible: metric score" in bad.stderr
