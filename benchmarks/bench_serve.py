"""Online serving: ``nbops serve`` vs ``mlflow models serve --env-manager local``, same model.

    python benchmarks/bench_serve.py [--clients 16] [--seconds 15] [--rounds 1] [--workers 1]

The churn example is trained once (its notebook defaults: 5,000 customers, 100
trees), registered as churn@production, and saved as an MLflow model from the
same object. MLflow runs from its own virtual environment
(benchmarks/.venv-mlflow, made here on first use with this scikit-learn
version, so the pickled forest loads); without it the MLflow side is skipped
with the reason printed.

Both servers get one worker process (``--workers`` changes both) and the same
request bytes: one customer per request, as ``{"dataframe_records": [...]}``
(MLflow's format; nbops serve reads it as ``records``). The load: ``--clients``
keep-alive connections, each sending its next request when the last answer
arrives, from one asyncio loop (hand-written HTTP/1.1, so the load generator
costs little of the 2 CPUs both servers share with it). Reported per server:
predictions/s and p50/p99 latency over ``--seconds`` after a 2 s warm-up; with
``--rounds N`` the servers alternate N times and the best round of each counts.
NBOPS_BENCH_FULL=1: 3 rounds of 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import free_port  # noqa: E402

MLFLOW_VENV = ROOT / "benchmarks" / ".venv-mlflow"
HOST = "127.0.0.1"


def train(folder: Path) -> tuple[Path, list[dict]]:
    """The churn example run and registered; returns the notebook and 200 customers as records."""
    from nbops import api, models

    nb = folder / "churn.ipynb"
    shutil.copy(ROOT / "example_notebooks" / "churn.ipynb", nb)
    run = api.run(nb, {})
    if run["status"] != "succeeded":
        raise SystemExit(f"the churn run failed: {run['id']}")
    version = models.register(run["id"], "train", "model", "churn", near=nb)
    models.promote("churn", version["version"], "production", near=nb)
    import pandas as pd

    frame = pd.read_csv(ROOT / "example_notebooks" / "churn_new_customers.csv")
    frame = pd.concat([frame] * 10, ignore_index=True)
    records = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in frame.to_dict("records")]
    return nb, records


def mlflow_python() -> tuple[Path | None, str]:
    """The MLflow venv's python (made on first use), or None and why not."""
    py = MLFLOW_VENV / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", "import mlflow"], capture_output=True).returncode == 0:
        return py, ""
    import sklearn

    print(f"making {MLFLOW_VENV} (mlflow, scikit-learn=={sklearn.__version__}) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True, capture_output=True)
        proc = subprocess.run(
            [str(py), "-m", "pip", "install", "-q", "mlflow", f"scikit-learn=={sklearn.__version__}"], capture_output=True, text=True, timeout=900
        )
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"cannot make the venv: {exc}"
    if proc.returncode != 0:
        return None, f"pip install mlflow failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}"
    return py, ""


def save_mlflow_model(py: Path, nb: Path, records: list[dict], folder: Path) -> Path:
    from nbops import models

    pkl = folder / "model.pkl"
    pkl.write_bytes(pickle.dumps(models.load("churn@production", near=nb)))
    (folder / "example.json").write_text(json.dumps(records[:5]))
    target = folder / "mlflow-model"
    script = (
        "import pickle, json, sys, pandas as pd, mlflow.sklearn\n"
        "from mlflow.models import infer_signature\n"
        "m = pickle.load(open(sys.argv[1], 'rb')); x = pd.DataFrame(json.load(open(sys.argv[2])))\n"
        "mlflow.sklearn.save_model(m, sys.argv[3], serialization_format='cloudpickle', signature=infer_signature(x, m.predict(x)), input_example=x)\n"
    )
    subprocess.run([str(py), "-c", script, str(pkl), str(folder / "example.json"), str(target)], check=True, capture_output=True, text=True)
    return target


# -- servers ---------------------------------------------------------------------------
def start(cmd: list[str], port: int, health: str, env: dict | None = None) -> subprocess.Popen:
    log = tempfile.NamedTemporaryFile("w+", prefix="bench-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"{cmd[:4]} exited:\n{log.read()[-3000:]}")
        status, _ = asyncio.run(_one(port, "GET", health, b""))
        if status == 200:
            return proc
        if time.monotonic() > deadline:
            stop(proc)
            raise SystemExit(f"{cmd[:4]} did not answer {health} in 180 s")
        time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


# -- load ------------------------------------------------------------------------------
def _request(method: str, path: str, body: bytes) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next((int(v) for k, _, v in (line.partition(":") for line in lines[1:]) if k.lower() == "content-length"), None)
    if length is None:  # chunked
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            body += await reader.readexactly(size + 2)
            if size == 0:
                return status, body
    return status, await reader.readexactly(length)


async def _one(port: int, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return 0, b""
    try:
        writer.write(_request(method, path, body))
        await writer.drain()
        return await _read_response(reader)
    except (OSError, asyncio.IncompleteReadError):
        return 0, b""
    finally:
        writer.close()


async def _load(port: int, bodies: list[bytes], clients: int, warmup: float, seconds: float) -> dict:
    latencies: list[float] = []
    errors = [0]
    loop = asyncio.get_running_loop()
    t_start = loop.time() + warmup
    t_end = t_start + seconds

    async def client(i: int) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        k = i
        while True:
            now = loop.time()
            if now >= t_end:
                break
            writer.write(_request("POST", "/invocations" if port in _MLFLOW_PORTS else "/predict", bodies[k % len(bodies)]))
            await writer.drain()
            status, _ = await _read_response(reader)
            done = loop.time()
            if now >= t_start:
                latencies.append(done - now)
                errors[0] += status != 200
            k += clients
        writer.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n,
        "per_s": n / seconds,
        "p50_ms": latencies[n // 2] * 1000 if n else float("nan"),
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else float("nan"),
        "errors": errors[0],
    }


_MLFLOW_PORTS: set[int] = set()


def measure(port: int, bodies: list[bytes], clients: int, seconds: float) -> dict:
    return asyncio.run(_load(port, bodies, clients, 2.0, seconds))


def check_same_answers(nbops_port: int, mlflow_port: int | None, bodies: list[bytes]) -> None:
    for body in bodies[:20]:
        status, ours = asyncio.run(_one(nbops_port, "POST", "/predict", body))
        assert status == 200, ours
        if mlflow_port is not None:
            status, theirs = asyncio.run(_one(mlflow_port, "POST", "/invocations", body))
            assert status == 200, theirs
            assert json.loads(ours)["predictions"] == json.loads(theirs)["predictions"], (ours, theirs)


def main() -> None:
    full = bool(os.environ.get("NBOPS_BENCH_FULL"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=30.0 if full else 15.0)
    ap.add_argument("--rounds", type=int, default=3 if full else 1)
    ap.add_argument("--workers", type=int, default=1, help="worker processes of each server")
    a = ap.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="nbops-bench-serve-"))
    print("training the churn example (5,000 customers, 100 trees) ...", flush=True)
    nb, records = train(folder)
    bodies = [json.dumps({"dataframe_records": [r]}).encode() for r in records]
    py, why = mlflow_python()
    mlflow_model = None
    if py is not None:
        try:
            mlflow_model = save_mlflow_model(py, nb, records, folder)
        except subprocess.CalledProcessError as exc:
            py, why = None, f"saving the MLflow model failed: {exc.stderr.strip().splitlines()[-1:]}"
    if py is None:
        print(f"skipping MLflow: {why}")

    env = {k: v for k, v in os.environ.items() if k != "NBOPS_STORE"}
    nbops_cmd = [sys.executable, "-m", "nbops.cli.main", "serve", "churn@production", "--notebook", str(nb), "--workers", str(a.workers)]
    results: dict[str, list[dict]] = {"nbops serve": [], "mlflow models serve": []}
    for _ in range(a.rounds):
        port = free_port()
        proc = start([*nbops_cmd, "--port", str(port)], port, "/health", env)
        try:
            mport = None
            if py is not None:
                mport = free_port()
                _MLFLOW_PORTS.add(mport)
                mcmd = [str(py), "-m", "mlflow", "models", "serve", "-m", str(mlflow_model), "--env-manager", "local",
                        "--host", HOST, "-p", str(mport), "-w", str(a.workers)]  # fmt: skip
                # MLflow execs `uvicorn` from PATH: its own venv's.
                menv = {**env, "PATH": f"{py.parent}{os.pathsep}{env.get('PATH', '')}", "MLFLOW_TRACKING_URI": f"file://{folder}/mlruns"}
                menv.pop("VIRTUAL_ENV", None)
                mproc = start(mcmd, mport, "/ping", menv)
            try:
                check_same_answers(port, mport, bodies)
                results["nbops serve"].append(measure(port, bodies, a.clients, a.seconds))
                if mport is not None:
                    results["mlflow models serve"].append(measure(mport, bodies, a.clients, a.seconds))
            finally:
                if mport is not None:
                    stop(mproc)
        finally:
            stop(proc)

    print(f"\nchurn model, {a.clients} concurrent clients, 1 customer per request, {a.seconds:.0f} s per round, {a.workers} worker(s) each")
    print(f"{'server':<22}{'predictions/s':>15}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    best = {}
    for name, rounds in results.items():
        if not rounds:
            continue
        best[name] = max(rounds, key=lambda r: r["per_s"])
        b = best[name]
        print(f"{name:<22}{b['per_s']:>15,.0f}{b['p50_ms']:>10.1f}{b['p99_ms']:>10.1f}{b['errors']:>8}")
        if len(rounds) > 1:
            each = ", ".join(f"{r['per_s']:,.0f}/s p99 {r['p99_ms']:.0f} ms" for r in rounds)
            print(f"    rounds: {each}")
    if len(best) == 2:
        ours, theirs = best["nbops serve"], best["mlflow models serve"]
        print(
            f"\nthroughput: {ours['per_s'] / theirs['per_s']:.2f}x MLflow's (goal >= 2x); p99: {ours['p99_ms']:.1f} ms vs {theirs['p99_ms']:.1f} ms (goal: lower)"
        )
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
