"""The Ray executor on a real 2-node Ray cluster (head + worker, one logical GPU each).

The cluster runs in a network namespace the test makes (see netns_cluster.py),
and so does every driver: ``driver.py`` runs a notebook through ``nbops.api.run``
and writes the run JSON. One cluster serves the whole module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nbops.store import RunStore

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import DRIVER, WHY_NOT, drive  # noqa: E402

# The first test also starts the cluster (fixture): on a loaded machine `ray start` alone
# may take minutes and is retried (netns_cluster.START_ATTEMPTS), so the per-test limit
# must hold the slowest start the fixture allows, not pyproject's 300 s.
pytestmark = [pytest.mark.ray, pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or ""), pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def nbdir(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("raynbs") / "nbs"
    shutil.copytree(HERE / "notebooks", dest, ignore=shutil.ignore_patterns("*.py", ".nbops"))
    return dest


def raw_stages(nbdir: Path, run_id: str) -> dict[str, dict]:
    """The store's own records (float times, unlike the ISO seconds of the run JSON)."""
    return {s["name"]: s for s in RunStore(nbdir / ".nbops").get_run(run_id)["stages"]}


@pytest.fixture(scope="module")
def fanout_ray(cluster, nbdir) -> dict:
    return drive(cluster, nbdir / "fanout.ipynb", "--executor", "ray", "--no-cache", "--param", "pause=4")


@pytest.fixture(scope="module")
def fanout_local(nbdir) -> dict:
    return drive(None, nbdir / "fanout.ipynb", "--executor", "local", "--no-cache", "--param", "pause=0.2")


def stage(run: dict, name: str) -> dict:
    return next(s for s in run["stages"] if s["name"] == name)


def test_ray_run_succeeds_and_outputs_flow_across_nodes(fanout_ray):
    assert fanout_ray["status"] == "succeeded", json.dumps([s["error"] for s in fanout_ray["stages"]], indent=1)
    assert fanout_ray["executor"]["name"] == "ray"
    assert fanout_ray["executor"]["nodes"] == 2 and fanout_ray["executor"]["gpus"] == 2
    # numbers.txt (1..10, read by a relative path from the shipped working_dir) * 2 -> 110, + 10 rows
    assert fanout_ray["metrics"]["total"] == 120
    nodes = {stage(fanout_ray, n)["worker"]["node_id"] for n in ("load", "left", "right", "join")}
    assert len(nodes) == 2, "load -> left/right -> join should have crossed from one node to the other"
    # Worker paths are reported in the driver's terms, so the cache can re-check the data file.
    load = stage(fanout_ray, "load")
    assert load["inputs"][0]["path"] == "numbers.txt"
    assert load["inputs"][0]["abspath"] == str(Path(fanout_ray["notebook"]).parent / "numbers.txt")
    assert stage(fanout_ray, "left")["metrics"] == {"left_sum": 110}
    assert [a["name"] for a in stage(fanout_ray, "right")["artifacts"]] == ["right.txt"]
    assert all(stage(fanout_ray, n)["has_notebook"] for n in ("load", "left", "right", "join"))


def test_gpu_stage_sees_its_gpu(fanout_ray, nbdir):
    left = stage(fanout_ray, "left")["worker"]
    assert left["ray_gpu_ids"] and left["gpu_ids"] == left["ray_gpu_ids"]
    assert left["CUDA_VISIBLE_DEVICES"] == ",".join(left["ray_gpu_ids"])
    assert stage(fanout_ray, "right")["worker"]["gpu_ids"] == []
    import nbformat

    store = RunStore(nbdir / ".nbops")
    digest = stage(fanout_ray, "left")["notebook_sha256"]
    executed = nbformat.read(store.objects.path(digest), as_version=4)
    assert any("left_cuda" in c.source for c in executed.cells)
    assert "/tmp/nbops-left-" not in json.dumps(executed), "worker temp paths leaked into the executed notebook"


def test_independent_stages_overlap_on_different_nodes(fanout_ray, nbdir):
    raw = raw_stages(nbdir, fanout_ray["id"])
    left, right = raw["left"], raw["right"]
    assert left["started_at"] < right["ended_at"] and right["started_at"] < left["ended_at"], (left, right)
    assert left["worker"]["node_id"] != right["worker"]["node_id"]


def test_ray_record_has_the_shape_of_a_local_record(fanout_ray, fanout_local):
    assert fanout_local["status"] == "succeeded"
    assert set(fanout_ray) == set(fanout_local)
    for name in ("load", "left", "right", "join"):
        ray_stage, local_stage = stage(fanout_ray, name), stage(fanout_local, name)
        assert set(ray_stage) == set(local_stage)
        # a Ray worker launches its kernels (no template to fork from there): no fork fields
        assert set(local_stage["worker"]) - {"gpu_note", "template", "fork_ms", "kernel_pid", "reason"} <= set(ray_stage["worker"])
        assert set(ray_stage["outputs"]) == set(local_stage["outputs"])
    # Same code, same parameters it reads: the same bytes, wherever it ran.
    assert stage(fanout_ray, "load")["outputs"] == stage(fanout_local, "load")["outputs"]
    assert fanout_ray["metrics"] == fanout_local["metrics"] == {"total": 120, "left_sum": 110}


def test_a_local_run_fills_the_cache_for_a_ray_run(cluster, nbdir, fanout_ray, fanout_local):
    # Same keys wherever a stage ran; the data file load read is re-checked on the driver.
    again = drive(cluster, nbdir / "fanout.ipynb", "--executor", "ray", "--param", "pause=0.2")
    assert again["status"] == "succeeded"
    assert [s["status"] for s in again["stages"]] == ["cached"] * 4
    assert stage(again, "left")["cached_from"] == fanout_local["id"]


def test_stage_errors_and_impossible_stages_fail_clearly(cluster, nbdir):
    started = time.time()
    run = drive(cluster, nbdir / "failing.ipynb", "--executor", "ray", "--no-cache", env={"NBOPS_RAY_NODE_WAIT": "3"})
    assert time.time() - started < 120
    assert run["status"] == "failed"
    boom = stage(run, "boom")["error"]
    assert boom["ename"] == "ValueError" and "bad row count: 2" in boom["evalue"]
    assert boom["cell"] == 1 and boom["first_line"] == "y = x + 1" and not boom["retryable"]
    assert stage(run, "boom")["has_notebook"]
    greedy = stage(run, "greedy")["error"]
    assert greedy["ename"] == "NoNodeForStage" and "GPU=4" in greedy["evalue"], greedy


def test_ctrl_c_cancels_the_ray_task(cluster, nbdir):
    marker = nbdir / "cancel.marker"
    marker.unlink(missing_ok=True)
    proc = cluster.popen(
        sys.executable,
        DRIVER,
        str(nbdir / "lost_node.ipynb"),
        str(nbdir / "cancel.json"),
        "--executor",
        "ray",
        "--no-cache",
        "--param",
        f"marker={marker}",
        cwd=nbdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 150
        while not (marker.exists() and marker.read_text().strip()):
            assert proc.poll() is None and time.time() < deadline, "the stage never started"
            time.sleep(0.2)
        ray_worker = int(marker.read_text())
        proc.send_signal(signal.SIGINT)  # nsenter execs the driver: this is the driver's pid
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = RunStore(nbdir / ".nbops")
    last = store.get_run(store.list_runs(notebook=str(nbdir / "lost_node.ipynb"), limit=1)[0]["id"])
    assert last["status"] == "interrupted"
    victim = next(s for s in last["stages"] if s["name"] == "victim")
    assert victim["status"] == "failed" and victim["error"]["ename"] == "KeyboardInterrupt"
    deadline = time.time() + 30
    while Path(f"/proc/{ray_worker}").exists() and time.time() < deadline:
        time.sleep(0.5)
    assert not Path(f"/proc/{ray_worker}").exists(), "the Ray worker running the stage was not cancelled"


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1", "auto"])
def test_no_cluster_says_how_to_get_one(address, tmp_path):
    code = (
        "from nbops.errors import UsageError\nfrom nbops.execute.ray import RayExecutor\n"
        f"try:\n    RayExecutor(address={address!r}, cwd={str(tmp_path)!r})\nexcept UsageError as e:\n    print('ERR', e)\n"
    )
    # An empty namespace of its own: nothing listens there, and nothing leaves it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=str(tmp_path))
    started = time.time()
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c", f'ip link set lo up && exec "{sys.executable}" -c "$0"', code],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert time.time() - started < 60, "a dead address should fail fast"
    assert f"ERR no Ray cluster to connect to at {address!r}" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "ray start --head" in proc.stdout and "--address local" in proc.stdout


def test_missing_ray_names_the_extra(monkeypatch):
    from nbops.errors import MissingExtraError
    from nbops.execute import get_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'nbops\[ray\]'"):
        get_executor("ray", cwd=".")


def test_lost_worker_node_is_retried_on_another_node(cluster, nbdir):
    """Kill the worker node under a stage: the stage's retry runs on a node that joins, no hang."""
    marker = nbdir / "victim.marker"
    marker.unlink(missing_ok=True)
    out = nbdir / "lost.json"
    proc = cluster.popen(
        sys.executable,
        DRIVER,
        str(nbdir / "lost_node.ipynb"),
        str(out),
        "--executor",
        "ray",
        "--no-cache",
        "--param",
        f"marker={marker}",
        cwd=nbdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 150
        while not (marker.exists() and marker.read_text().strip()):
            assert proc.poll() is None, proc.stdout.read()[-3000:]  # type: ignore[union-attr]
            assert time.time() < deadline, "the victim stage never started"
            time.sleep(0.2)
        ray_worker = int(marker.read_text())
        raylet = int(Path(f"/proc/{ray_worker}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert raylet in cluster.worker_pids, "the victim stage should run on the worker node (memory:2G)"
        killed_at = time.time()
        cluster.kill_worker_node(raylet)
        cluster.add_worker()  # the retry needs a node with 2 GB: this one joins within node_wait
        output, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    result = json.loads(out.read_text())
    victim = stage(result, "victim")
    events = [(e["event"], e["stage"]) for e in result["events"]]
    assert ("retry", "victim") in events, output[-3000:]
    retry = next(e for e in result["events"] if e["event"] == "retry")
    assert retry["info"]["error"]["ename"] in ("NodeDiedError", "WorkerCrashedError", "LocalRayletDiedError", "ObjectLostError"), retry
    assert "lost" in retry["info"]["error"]["evalue"]
    assert retry["t"] - killed_at < 60, "the lost node took too long to notice"
    assert result["status"] == "succeeded", victim["error"]
    assert victim["attempts"] == 2 and result["metrics"] == {"answer": 42}
    assert victim["worker"]["pid"] != ray_worker
