"""A team store failing under nbops, done for real (PostgreSQL and moto's S3 server, stopped,
refusing, missing): each fault is its own clear message with its fix, a non-zero exit, no
traceback, and nothing recorded as succeeded; a run the store failed under is resumed."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from nbops.errors import StoreError
from nbops.store import RunStore
from tests.services import ADMIN_PASSWORD, free_port, postgres, s3  # noqa: F401

from ..conftest import NBOPS, build_notebook, run_cli

WAIT_S = 120  # a stage waits at most this long for the test's go-ahead


def _notebook(folder: Path) -> Path:
    return build_notebook(folder, [("x = list(range(100))", ["stage:make"]), ("n = len(x)", ["stage:count"])], "team.ipynb")


def _waiting_notebook(folder: Path) -> Path:
    """make -> wait -> total; ``wait`` says it started (file ``started``), then waits for file ``go``."""
    wait = (
        "import pathlib, time\n"
        f"pathlib.Path({str(folder / 'started')!r}).touch()\n"
        f"deadline = time.time() + {WAIT_S}\n"
        f"while not pathlib.Path({str(folder / 'go')!r}).exists() and time.time() < deadline:\n"
        "    time.sleep(0.1)\n"
        "y = [v * 2 for v in x]"
    )
    cells = [("x = list(range(100))", ["stage:make"]), (wait, ["stage:wait"]), ("total = sum(y)", ["stage:total"])]
    return build_notebook(folder, cells, "waiting.ipynb")


def _env(store: str, objects: str | None = None, **extra: str) -> dict[str, str]:
    return {"NBOPS_STORE": store, **({"NBOPS_OBJECTS": objects} if objects else {}), **extra}


def _clean(done: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr


def _runs(store: str, objects: str | None = None) -> list[dict]:
    return RunStore(store, objects=objects).list_runs()


def _timed_cli(*args: str, cwd: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    began = time.monotonic()
    done = run_cli(*args, cwd=cwd, env=env, timeout=120)
    return done, time.monotonic() - began


# -- the database ----------------------------------------------------------------------------


def test_an_unreachable_database_is_named_with_its_password_masked(tmp_path: Path):
    nb = _notebook(tmp_path)
    url = f"postgresql://alice:pw-not-shown@127.0.0.1:{free_port()}/team"  # a closed port
    done, seconds = _timed_cli("run", str(nb), cwd=tmp_path, env=_env(url))
    assert done.returncode == StoreError.exit_code, done.stderr
    assert seconds < 10, seconds
    assert "cannot reach the database postgresql://alice:***@127.0.0.1" in done.stderr
    assert "PostgreSQL is running" in done.stderr
    assert "pw-not-shown" not in done.stderr + done.stdout
    _clean(done)
    assert not (tmp_path / ".nbops" / "runs").exists()  # no run folder: nothing was started


def test_a_wrong_password_and_a_missing_database_each_say_their_fix(postgres, tmp_path: Path):  # noqa: F811
    nb = _notebook(tmp_path)
    good = postgres.new_database()
    wrong = postgres.url_with(good, "nbops", "wrong-password")
    missing = postgres.url_with("no_such_db_nbops", "nbops", ADMIN_PASSWORD)
    cases = {
        wrong: ("refused the credentials", "check the user and password"),
        missing: ("the database of postgresql://nbops:***@", "createdb"),
    }
    for url, (said, fix) in cases.items():
        done, seconds = _timed_cli("run", str(nb), cwd=tmp_path, env=_env(url))
        assert done.returncode == StoreError.exit_code, done.stderr
        assert seconds < 10, seconds
        assert said in done.stderr and fix in done.stderr, done.stderr
        assert "wrong-password" not in done.stderr and ADMIN_PASSWORD not in done.stderr
        _clean(done)
    assert "does not exist" in run_cli("runs", "ls", cwd=tmp_path, env=_env(missing)).stderr
    assert _runs(good) == []  # the right database was never written by those runs


# -- the object store --------------------------------------------------------------------------


def test_object_store_faults_each_say_their_cause_before_anything_runs(postgres, s3, tmp_path: Path):  # noqa: F811
    nb = _notebook(tmp_path)
    db = postgres.new_database()
    bucket = s3.new_bucket()
    closed = f"http://127.0.0.1:{free_port()}"
    cases = [
        ("unreachable", _env(db, f"{bucket}/objects", AWS_ENDPOINT_URL=closed), f"cannot reach the object store {bucket}/objects (endpoint {closed})"),
        ("no bucket", _env(db, "s3://no-such-bucket-nbops/objects"), "the bucket no-such-bucket-nbops of s3://no-such-bucket-nbops/objects does not exist"),
    ]
    for name, env, said in cases:
        done, seconds = _timed_cli("run", str(nb), cwd=tmp_path, env=env)
        assert done.returncode == StoreError.exit_code, (name, done.stderr)
        assert seconds < 10, (name, seconds)
        assert said in done.stderr, (name, done.stderr)
        _clean(done)
    with s3.credentials_checked() as (key_id, secret):
        env = _env(db, f"{bucket}/objects", AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY="not-the-secret")
        done, seconds = _timed_cli("run", str(nb), cwd=tmp_path, env=env)
        assert done.returncode == StoreError.exit_code, done.stderr
        assert seconds < 10, seconds
        assert f"{bucket}/objects: the credentials were refused (SignatureDoesNotMatch)" in done.stderr, done.stderr
        assert "AWS_SECRET_ACCESS_KEY" in done.stderr and "not-the-secret" not in done.stderr
        _clean(done)
    assert _runs(db) == []  # checked before the run was recorded: nothing half-written
    assert not list(s3.client().list_objects_v2(Bucket=bucket.removeprefix("s3://")).get("Contents", []))


def _start_waiting_run(nb: Path, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen([*NBOPS, "run", str(nb)], cwd=nb.parent, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not (nb.parent / "started").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the stage 'wait' never started (exit {proc.returncode}):\n{out}\n{err}")
        time.sleep(0.2)
    return proc


def _resume(run_id: str, nb: Path, env: dict[str, str]) -> dict:
    done = run_cli("resume", run_id, "--json", cwd=nb.parent, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed = json.loads(done.stdout)
    statuses = {s["name"]: s["status"] for s in resumed["stages"]}
    assert resumed["status"] == "succeeded" and resumed["parent_id"] == run_id
    assert statuses == {"make": "cached", "wait": "succeeded", "total": "succeeded"}, statuses
    return resumed


def test_the_object_store_going_away_mid_run_fails_the_stage_and_resume_completes(postgres, s3, tmp_path: Path):  # noqa: F811
    nb = _waiting_notebook(tmp_path)
    db, objects = postgres.new_database(), s3.new_bucket() + "/objects"
    env = _env(db, objects)
    proc = _start_waiting_run(nb, env)
    try:
        s3.stop()
        (tmp_path / "go").touch()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        s3.start()
    assert proc.returncode == StoreError.exit_code, err
    assert "Traceback" not in err and "internal error" not in err, err
    (run,) = _runs(db, objects)
    assert f"run {run['id']} failed: " in err and f"cannot reach the object store {objects}" in err, err
    assert f"nbops resume {run['id']}" in err
    stages = {s["name"]: s for s in RunStore(db, objects=objects).get_run(run["id"])["stages"]}
    assert run["status"] == "failed"
    assert {n: s["status"] for n, s in stages.items()} == {"make": "succeeded", "wait": "failed", "total": "skipped"}
    error = stages["wait"]["error"]
    assert error["ename"] == "StoreError" and f"cannot reach the object store {objects}" in error["evalue"] and "server is running" in error["fix"]
    resumed = _resume(run["id"], nb, env)
    assert resumed["stages"][0]["cached_from"] == run["id"]


def test_the_database_going_away_mid_run_stops_the_run_and_resume_completes(postgres, tmp_path: Path):  # noqa: F811
    nb = _waiting_notebook(tmp_path)
    db, objects = postgres.new_database(), (tmp_path / "shared" / "objects").as_uri()
    env = _env(db, objects)
    proc = _start_waiting_run(nb, env)
    try:
        postgres.stop()
        (tmp_path / "go").touch()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        postgres.start()
    assert proc.returncode == StoreError.exit_code, err
    assert "Traceback" not in err and "internal error" not in err, err
    (run,) = _runs(db, objects)  # a reader marks the run of a driver that is gone
    assert f"run {run['id']} stopped" in err and f"nbops resume {run['id']}" in err, err
    assert "cannot reach the database postgresql://nbops:***@" in err and ADMIN_PASSWORD not in err, err
    assert run["status"] == "interrupted"
    assert {s["name"]: s["status"] for s in run["stages"]} == {"make": "succeeded", "wait": "failed", "total": "skipped"}
    _resume(run["id"], nb, env)
