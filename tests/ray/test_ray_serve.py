"""``nbops serve MODEL@ALIAS --ray``: Ray Serve deployments on the session's namespaced cluster.

Two models, one Serve instance, deployed once for the module:

- ``churn`` (the shared fixture of tests/models, trained here without a GPU)
  with 2 replicas at ``/``;
- ``raygpu``, trained on the cluster by a stage tagged ``gpus:1`` (so its
  version records ``resources.gpus = 1``), 1 replica at ``/raygpu`` behind a
  bearer token.

Everything that talks to Ray runs inside the cluster's network namespace, as
the other Ray tests' drivers do: this file is also a script
(``python test_ray_serve.py deploy|shutdown|bridge ...``) that the fixtures run
there with ``cluster.run``. HTTP from the test process reaches Serve's proxy
(127.0.0.1:PORT inside the namespace, unreachable from here) through a bridge:
a small forwarder started in the namespace listens on a unix socket file (a
network namespace does not separate those, as with PostgreSQL's socket in
test_ray_direct_objects.py) and pipes each connection to the proxy; httpx's
``uds`` transport talks to it.

This module sorts after test_ray_executor.py, which ends with a fresh worker
node in place of the one it killed: two nodes, one CPU and one GPU each.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PORT = 18000

if __name__ != "__main__":
    from tests.conftest import build_notebook
    from tests.models.conftest import churn, churn_frame  # noqa: F401

    sys.path.insert(0, str(HERE))
    from harness import WHY_NOT, drive

    # The first test may start the session's cluster (minutes on a loaded machine).
    pytestmark = [pytest.mark.ray, pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or ""), pytest.mark.timeout(1200)]


# -- inside the namespace ----------------------------------------------------------------
def _deploy(spec: dict) -> dict:
    """Each deployment in ``spec["deploy"]`` (blocking=False), timed, then where its replicas run."""
    from ray import serve

    from nbops.models import ray_serve

    out: dict = {"timings": {}, "urls": {}, "described": {}}
    t = time.time()
    ray_serve._join(None, ship_nbops=True)  # as deploy() joins: with this nbops uploaded for the replicas
    out["timings"]["connect_s"] = time.time() - t
    t = time.time()
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": PORT})
    out["timings"]["serve_start_s"] = time.time() - t
    for kw in spec["deploy"]:
        t = time.time()
        out["urls"][kw["ref"]] = ray_serve.deploy(**kw, blocking=False)
        out["timings"][f"deploy {kw['ref']} ({kw.get('replicas', 1)} replicas)"] = time.time() - t
    for kw in spec["deploy"]:
        out["described"][kw["ref"]] = ray_serve.describe(kw["ref"], samples=24)
    return out


def _shutdown(spec: dict) -> dict:
    from ray import serve

    from nbops.models import ray_serve

    removed = ray_serve.shutdown(spec.get("ref"))
    ray_serve._join(None)
    left = list(serve.status().applications) if spec.get("ref") else []
    return {"removed": removed, "left": left}


def _bridge(sock: str, port: int) -> None:
    """Forward every connection to ``sock`` to 127.0.0.1:``port`` (run in the namespace)."""

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def main():
        server = await asyncio.start_unix_server(handle, path=sock)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -- fixtures ----------------------------------------------------------------------------
def in_namespace(cluster, action: str, spec: dict, timeout: float = 600) -> dict:
    out = Path(spec["out"])
    proc = cluster.run(sys.executable, __file__, action, json.dumps(spec), timeout=timeout, check=False, cwd=ROOT, env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and out.exists(), f"{action} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def raygpu(cluster, tmp_path_factory):
    """A model trained on the cluster by a stage tagged gpus:1, registered as raygpu."""
    from nbops import models

    folder = tmp_path_factory.mktemp("raygpu")
    cells = [
        ("import os\nimport numpy as np\nimport pandas as pd", ["setup"]),
        (
            "rng = np.random.default_rng(0)\nX = pd.DataFrame({'a': rng.normal(size=300), 'b': rng.normal(size=300)})\ny = (X.a - X.b > 0).astype(int)",
            ["stage:data"],
        ),
        (
            "from sklearn.linear_model import LogisticRegression\ncuda = os.environ.get('CUDA_VISIBLE_DEVICES', '')\nmodel = LogisticRegression().fit(X, y)",
            ["stage:train", "gpus:1"],
        ),
        ("score = float(model.score(X, y))", ["stage:check"]),  # a stage's outputs are what later stages use
    ]
    nb = build_notebook(folder, cells, "gpu_train.ipynb")
    run = drive(cluster, nb, "--executor", "ray", "--no-cache", timeout=300)
    assert run["status"] == "succeeded", json.dumps([s["error"] for s in run["stages"]], indent=1)[:3000]
    version = models.register(run["id"], "train", "model", "raygpu", near=nb)
    return {"notebook": nb, "version": version, "run": run}


@pytest.fixture(scope="module")
def bridge(cluster, tmp_path_factory):
    sock = str(tmp_path_factory.mktemp("bridge") / "serve.sock")
    proc = cluster.popen(sys.executable, __file__, "bridge", json.dumps({"sock": sock, "port": PORT}), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"  # type: ignore[union-attr]
        yield sock
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def served(cluster, churn, raygpu, bridge, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("served") / "deployed.json"
    spec = {
        "out": str(out),
        "deploy": [
            # A quarter CPU each: the cluster has one CPU per node, and both models fit beside each other.
            {"ref": "churn@production", "near": str(churn.notebook), "replicas": 2, "num_cpus": 0.25, "port": PORT},
            {"ref": "raygpu", "near": str(raygpu["notebook"]), "num_cpus": 0.25, "port": PORT, "token": "s3cret", "route_prefix": "/raygpu"},
        ],
    }
    started = time.time()
    result = in_namespace(cluster, "deploy", spec)
    result["timings"]["whole_script_s"] = time.time() - started
    print("ray serve timings:", json.dumps(result["timings"], indent=1))
    yield result
    in_namespace(cluster, "shutdown", {"out": str(out.with_name("teardown.json"))}, timeout=180)


@pytest.fixture
def http(bridge):
    import httpx

    with httpx.Client(transport=httpx.HTTPTransport(uds=bridge), base_url=f"http://127.0.0.1:{PORT}", timeout=60) as client:
        yield client


# -- tests -------------------------------------------------------------------------------
def test_churn_replicas_answer_like_the_model_in_process(served, http, churn):  # noqa: F811
    from nbops import models

    assert served["urls"]["churn@production"] == f"http://127.0.0.1:{PORT}"
    described = served["described"]["churn@production"]
    assert described["status"] == "RUNNING" and described["deployments"]["model"]["replicas"] == {"RUNNING": 2}
    placements = described["placements"]
    assert len({p["replica"] for p in placements}) == 2, "24 calls reached one replica only"
    assert all(p["resources"].get("GPU", 0) == 0 and p["gpu_ids"] == [] for p in placements), placements
    frame = churn_frame(churn, 40)
    expected = models.load("churn@production", near=churn.notebook).predict(frame).tolist()
    records = json.loads(frame.to_json(orient="records"))
    for start in (0, 20):  # several requests: the proxy spreads them over both replicas
        r = http.post("/predict", json={"records": records[start : start + 20]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["predictions"] == expected[start : start + 20]
        assert body["model"] == {"name": "churn", "version": churn.version["version"]}
        assert len(body["probabilities"]) == 20 and body["classes"] == churn.version["extra"]["classes"]
    assert http.get("/health").status_code == 200
    meta = http.get("/metadata").json()
    assert meta["name"] == "churn" and meta["version"] == churn.version["version"] and meta["signature"] == churn.version["signature"]
    assert "nbops_serve_requests_total" in http.get("/metrics").text  # Prometheus text of the replica that answered


def test_bad_request_is_422_and_the_service_stays_up(served, http, churn):  # noqa: F811
    frame = churn_frame(churn, 3)
    records = json.loads(frame.drop(columns=[frame.columns[0]]).to_json(orient="records"))
    r = http.post("/predict", json={"records": records})
    assert r.status_code == 422 and any(frame.columns[0] in p for p in r.json()["problems"]), r.text
    assert http.post("/predict", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
    assert http.get("/health").status_code == 200
    ok = http.post("/predict", json={"records": json.loads(frame.to_json(orient="records"))})
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 3


def test_num_gpus_comes_from_the_training_stage(served, http, raygpu):
    assert raygpu["version"]["extra"]["resources"].get("gpus") == 1
    [train] = [s for s in raygpu["run"]["stages"] if s["name"] == "train"]
    assert train["status"] == "succeeded"
    [placement] = served["described"]["raygpu"]["placements"]
    assert placement["resources"].get("GPU") == 1, placement
    assert placement["gpu_ids"], placement  # Ray handed the replica a (logical) GPU
    assert served["urls"]["raygpu"] == f"http://127.0.0.1:{PORT}/raygpu"
    # Same routes under the application's prefix, behind its token.
    rows = [{"a": 1.0, "b": -1.0}, {"a": -2.0, "b": 2.0}]
    assert http.post("/raygpu/predict", json={"records": rows}).status_code == 401
    r = http.post("/raygpu/predict", json={"records": rows}, headers={"authorization": "Bearer s3cret"})
    assert r.status_code == 200 and r.json()["predictions"] == [1, 0], r.text


def test_resources_and_bad_references_fail_before_the_cluster(tmp_path, churn):  # noqa: F811
    from nbops.errors import NotFoundError, UsageError
    from nbops.models import ray_serve

    assert ray_serve.replica_resources({"extra": {"resources": {"gpus": 2}}}) == {"num_gpus": 2.0}
    assert ray_serve.replica_resources({"extra": {"resources": {"gpus": 2}}}, num_gpus=0, num_cpus=0.5) == {"num_gpus": 0.0, "num_cpus": 0.5}
    assert ray_serve.replica_resources({"extra": {}}) == {"num_gpus": 0.0}
    # Unknown alias, bad replicas, bad prefix: the caller's error, and nothing reached a cluster (no address needed).
    with pytest.raises(NotFoundError, match="no alias 'nope'"):
        ray_serve.deploy("churn@nope", near=churn.notebook, address="127.0.0.1:1")
    with pytest.raises(UsageError, match="replicas"):
        ray_serve.deploy("churn@production", near=churn.notebook, replicas=0)
    with pytest.raises(UsageError, match="route prefix"):
        ray_serve.deploy("churn@production", near=churn.notebook, route_prefix="churn")


def test_shutdown_removes_one_model_then_everything(served, http, cluster, tmp_path):
    one = in_namespace(cluster, "shutdown", {"out": str(tmp_path / "one.json"), "ref": "raygpu"}, timeout=180)
    assert one["removed"] == ["nbops-raygpu"] and one["left"] == ["nbops-churn"]
    assert http.get("/raygpu/health").status_code == 404
    assert http.get("/health").status_code == 200
    everything = in_namespace(cluster, "shutdown", {"out": str(tmp_path / "all.json")}, timeout=180)
    assert everything["removed"] == ["nbops-churn"]
    import httpx

    with pytest.raises(httpx.TransportError):  # the proxy is gone with Serve
        http.get("/health")


if __name__ == "__main__":
    action, spec = sys.argv[1], json.loads(sys.argv[2])
    if action == "bridge":
        _bridge(spec["sock"], int(spec["port"]))
    else:
        result = {"deploy": _deploy, "shutdown": _shutdown}[action](spec)
        Path(spec["out"]).write_text(json.dumps(result, default=str))
