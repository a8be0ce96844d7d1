"""``nbops serve``: a real uvicorn server on a free port, real HTTP clients (httpx).

The service under test serves the session's churn model; tests that promote,
log or swap register model names of their own from the same run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import NBOPS
from tests.models.conftest import churn_frame, wait_until_healthy
from tests.services import free_port

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class ThreadServer:
    """uvicorn serving ``app`` from a thread of this process, on a free port."""

    def __init__(self, app):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the service did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def _app(ref: str, churn, **options):
    from nbops.models.serve import create_app

    return create_app(ref, near=churn.notebook, **options)


def _own_model(churn, name: str, versions: int = 1, alias: str | None = None) -> None:
    """``name`` v1..vN: the churn run's model under a name of this test's own."""
    from nbops import models

    for _ in range(versions):
        models.register(churn.run["id"], "train", "model", name, near=churn.notebook)
    if alias:
        models.promote(name, 1, alias, near=churn.notebook)


def _records(frame) -> list[dict]:
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in frame.to_dict("records")]


def _metric(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"[,}]" if want else r"(\{[^}]*\})?") + r"[^ ]* ([0-9.e+-]+)$"
    found = [float(m.group(m.lastindex)) for m in re.finditer(pattern, text, re.M)]
    assert found, f"no {name} {labels} in /metrics"
    return found[0]


@pytest.fixture(scope="module")
def service(churn):
    with ThreadServer(_app("churn@production", churn, token=TOKEN, poll=0, max_body=64 * 1024)) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(service):
    with httpx.Client(base_url=service.url, headers=AUTH, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def expected(churn):
    """Predictions of the churn model called in this process, on 40 rows."""
    from nbops import models
    from nbops.runtime import flavors

    frame = churn_frame(churn, 40)
    out = flavors.predict(models.load("churn@production", near=churn.notebook), "sklearn", frame)
    return frame, out


def test_predictions_equal_in_process(client, expected):
    frame, out = expected
    want_pred, want_proba = out["predictions"].tolist(), out["probabilities"].tolist()

    r = client.post("/predict", json={"records": _records(frame)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"] == want_pred and body["probabilities"] == want_proba
    assert body["model"] == {"name": "churn", "version": 1} and body["classes"] == out["classes"]

    columns = {c: frame[c].tolist() for c in frame.columns}
    assert client.post("/predict", json={"columns": columns}).json()["predictions"] == want_pred

    import pyarrow as pa

    sink = pa.BufferOutputStream()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    r = client.post("/predict", content=sink.getvalue().to_pybytes(), headers={"Content-Type": "application/vnd.apache.arrow.stream"})
    assert r.status_code == 200, r.text
    assert r.json()["probabilities"] == want_proba


def test_sixteen_concurrent_clients_are_micro_batched(service, client, expected):
    frame, out = expected
    want = out["predictions"].tolist()
    before = client.get("/metrics").text
    calls0 = _metric(before, "nbops_serve_model_calls_total")
    ok0 = _metric(before, "nbops_serve_requests_total", route="/predict", status="200")

    def one_client(i: int) -> list[bool]:
        with httpx.Client(base_url=service.url, headers=AUTH, timeout=30) as c:
            rows = [(i * 7 + k) % len(frame) for k in range(15)]
            return [c.post("/predict", json={"records": _records(frame.iloc[[r]])}).json()["predictions"] == [want[r]] for r in rows]

    with ThreadPoolExecutor(16) as pool:
        results = [ok for batch in pool.map(one_client, range(16)) for ok in batch]
    assert len(results) == 240 and all(results)

    after = client.get("/metrics").text
    served = _metric(after, "nbops_serve_requests_total", route="/predict", status="200") - ok0
    calls = _metric(after, "nbops_serve_model_calls_total") - calls0
    assert served == 240
    assert calls < served, f"{calls} model calls for {served} requests: nothing was batched"
    singles = _metric(after, "nbops_serve_batch_requests_bucket", le="1")
    assert _metric(after, "nbops_serve_batch_requests_count") > singles, "no model call served several requests"
    assert "nbops_serve_request_duration_seconds_bucket" in after and 'nbops_serve_model_version{model="churn"} 1' in after


def test_input_validated_against_the_signature(client, expected):
    frame, _ = expected
    record = _records(frame.head(1))[0]

    r = client.post("/predict", json={"records": [{**record, "tenure_months": "long"}]})
    assert r.status_code == 422
    assert any("tenure_months" in p for p in r.json()["problems"])

    missing = {k: v for k, v in record.items() if k != "support_calls"}
    r = client.post("/predict", json={"records": [{**missing, "colour": "red"}]})
    assert r.status_code == 422
    problems = r.json()["problems"]
    assert any("support_calls" in p and "missing" in p for p in problems) and any("colour" in p for p in problems)
    assert "tenure_months (int64)" in r.json()["fix"]


def test_status_codes(service, client):
    assert client.post("/predict", content=b"not json at all").status_code == 400
    assert client.get("/nowhere").status_code == 404 and client.get("/nowhere").json()["error"] == "RequestError"
    assert client.get("/predict").status_code == 405
    r = client.get("/features", params={"table": "t", "id": 1})
    assert r.status_code == 404 and "--features" in r.json()["fix"]  # this service serves no feature tables

    with httpx.Client(base_url=service.url, timeout=30) as anonymous:
        assert anonymous.get("/health").status_code == 200  # /health stays open
        for path in ("/metadata", "/metrics"):
            assert anonymous.get(path).status_code == 401
        assert anonymous.post("/predict", json={"records": []}).status_code == 401
        r = anonymous.post("/predict", json={"records": []}, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and "token" in r.json()["message"]

    big = b'{"records": [' + b" " * (100 * 1024) + b"]}"
    r = client.post("/predict", content=big)
    assert r.status_code == 413 and "65,536" in r.json()["message"]
    # No Content-Length (chunked): refused while streaming, not after reading it all.
    r = client.post("/predict", content=(b" " * 8192 for _ in range(50)))
    assert r.status_code == 413

    meta = client.get("/metadata").json()
    assert meta["name"] == "churn" and meta["version"] == 1 and meta["flavor"] == "sklearn"
    assert meta["signature"]["columns"][0]["name"] == "tenure_months" and meta["lineage"]["run_id"] == meta["run_id"]


GARBAGE = [
    b"", b"null", b"[]", b"42", b'"text"', b"{}", b'{"records": 5}', b'{"records": [1, 2]}', b'{"records": [[1, "a"]]}',
    b'{"records": [{"tenure_months": {"nested": [1, {"deep": null}]}}]}', b'{"records": [{"tenure_months": [1, 2]}]}',
    b'{"columns": [1]}', b'{"columns": {"a": 1}}', b'{"columns": {"a": [1], "b": [1, 2]}}', b'{"columns": {"a": [[1]]}}',
    b"\xff\xfe\x00garbage", b"[" * 30_000 + b"]" * 30_000, b'{"records": [{"tenure_months": 1' + b"0" * 400 + b"}]}",
    b'{"records": [{"monthly_fee": 1e999}]}', b'{"records": [null, true]}', b"{" + b'"a":' * 1000,
]  # fmt: skip


def test_garbage_never_crashes_the_service(client, expected):
    frame, out = expected
    record = _records(frame.head(1))[0]
    bodies = [*GARBAGE, json.dumps({"records": [{**record, "tenure_months": 10**400}]}).encode(),
              json.dumps({"records": [{**record, "monthly_fee": float("inf")}]}).encode(),
              json.dumps({"records": [{**record, "monthly_fee": None}]}).encode()]  # fmt: skip
    for body in bodies:
        r = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code in (400, 422), (body[:80], r.status_code, r.text)
        assert r.json()["message"], body[:80]
    r = client.post("/predict", content=b"\x00\x01 not arrow", headers={"Content-Type": "application/vnd.apache.arrow.stream"})
    assert r.status_code == 400 and "Arrow" in r.json()["message"]
    r = client.post("/predict", json={"records": [{**record, "tenure_months": 10**400}]})
    assert "tenure_months" in r.text
    # Still serving, with the same answers.
    assert client.get("/health").json()["status"] == "ok"
    assert client.post("/predict", json={"records": [record]}).json()["predictions"] == out["predictions"][:1].tolist()
    assert client.post("/predict", json={"records": []}).json()["predictions"] == []


def test_swap_under_load_fails_no_request(churn, expected):
    from nbops import models

    frame, out = expected
    want = out["predictions"].tolist()
    _own_model(churn, "serve-swap", versions=2, alias="live")
    stop = threading.Event()
    seen: list[list[int]] = [[] for _ in range(8)]
    failures: list[str] = []

    def hammer(i: int, url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            while not stop.is_set():
                k = len(seen[i]) % len(frame)
                try:
                    r = c.post("/predict", json={"records": _records(frame.iloc[[k]])})
                    body = r.json()
                    if r.status_code != 200 or body["predictions"] != [want[k]]:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                    seen[i].append(body["model"]["version"])
                except Exception as exc:  # noqa: BLE001 - any client-side failure counts
                    failures.append(repr(exc))

    with ThreadServer(_app("serve-swap@live", churn, poll=0.05)) as srv:
        threads = [threading.Thread(target=hammer, args=(i, srv.url)) for i in range(8)]
        for t in threads:
            t.start()
        _wait(lambda: all(len(s) >= 5 for s in seen), "clients answered by v1")
        models.promote("serve-swap", 2, "live", near=churn.notebook)
        _wait(lambda: all(s and s[-1] == 2 for s in seen), "every client answered by v2")
        marks = [len(s) for s in seen]
        _wait(lambda: all(len(s) >= m + 5 for s, m in zip(seen, marks, strict=True)), "more answers after the swap")
        stop.set()
        for t in threads:
            t.join(30)
        metrics = httpx.get(f"{srv.url}/metrics").text
    assert not failures, failures[:5]
    for versions in seen:
        assert versions[0] == 1 and versions[-1] == 2
        first_two = versions.index(2)
        assert set(versions[first_two:]) == {2}, "a client went back to v1 after the swap"
    assert _metric(metrics, "nbops_serve_swaps_total") == 1 and 'nbops_serve_model_version{model="serve-swap"} 2' in metrics


def _wait(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.02)


def test_request_logging_writes_sampled_rows(churn, expected):
    from nbops.models.registry import open_registry

    frame, _ = expected
    _own_model(churn, "serve-log")
    with ThreadServer(_app("serve-log", churn, poll=0, log_requests=0.5)) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        for i in range(120):
            assert c.post("/predict", json={"records": _records(frame.iloc[[i % 40, (i + 1) % 40]])}).status_code == 200
    # Leaving the server flushed the log; each sampled request is one row with its inputs.
    _, reg = open_registry(near=churn.notebook)
    logged = reg.requests("serve-log")
    assert 25 <= len(logged) <= 95, len(logged)
    names = list(frame.columns)
    for row in logged:
        assert row["version"] == 1 and row["rows"] == 2
        assert sorted(row["payload"]["columns"]) == sorted(names) and len(row["payload"]["columns"]["tenure_months"]) == 2
    first = logged[0]["payload"]["columns"]
    assert any(first["monthly_fee"][0] == v for v in frame["monthly_fee"].tolist())


def test_a_store_error_in_the_request_log_never_fails_a_request(churn, expected):
    frame, _ = expected
    _own_model(churn, "serve-log-broken")
    app = _app("serve-log-broken", churn, poll=0, log_requests=1.0)
    service = app.state.service
    service.log.registry = None  # the store "gone": log_requests raises on every row
    with ThreadServer(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        for i in range(5):
            assert c.post("/predict", json={"records": _records(frame.iloc[[i]])}).status_code == 200
        _wait(lambda: service.metrics.log_errors == 5, "the log thread counted 5 store errors")
        assert _metric(c.get("/metrics").text, "nbops_serve_log_errors_total") == 5


def _serve(churn, port: int, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "NBOPS_STORE"}
    cmd = [*NBOPS, "serve", "churn@production", "--port", str(port), "--notebook", str(churn.notebook), *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_port_in_use_is_a_clear_error(churn):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = _serve(churn, port)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert f"127.0.0.1:{port}" in err and "--port" in err and "Traceback" not in err


def test_unknown_alias_is_the_registry_error(churn):
    proc = subprocess.run([*NBOPS, "serve", "churn@nowhere", "--notebook", str(churn.notebook)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no alias 'nowhere'" in proc.stderr and "production" in proc.stderr
    proc = subprocess.run([*NBOPS, "serve", "churn@production", "--replicas", "2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--ray" in proc.stderr


def test_two_workers_smoke(churn, expected):
    frame, out = expected
    port = free_port()
    proc = _serve(churn, port, "--workers", "2", "--poll", "0")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            wait_until_healthy(proc, c, "nbops serve --workers 2")
            with ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda i: c.post("/predict", json={"records": _records(frame.iloc[[i]])}).json(), range(12)))
        assert [a["predictions"][0] for a in answers] == out["predictions"][:12].tolist()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_build_app_serves_a_pinned_version_from_an_open_store(churn, expected):
    """What a Ray Serve replica builds (nbops.models.ray_serve): the store already open, the version resolved."""
    from nbops.models.registry import open_registry, resolve
    from nbops.models.serve import build_app

    frame, out = expected
    rs, reg = open_registry(near=churn.notebook)
    app = build_app("churn@production", version=resolve("churn@1", registry=reg), rs=rs, token=TOKEN)
    assert app.state.service.poll == 0
    with ThreadServer(app) as srv, httpx.Client(base_url=srv.url, headers=AUTH, timeout=30) as c:
        body = c.post("/predict", json={"records": _records(frame.head(5))}).json()
        assert body["predictions"] == out["predictions"][:5].tolist() and body["model"] == {"name": "churn", "version": 1}
        assert c.get("/metadata").json()["lineage"]["run_id"] == churn.run["id"]
