"""The run routes over a team store (real PostgreSQL, objects on a real S3 server):
each answer names the store (password masked) and each run its author."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from tornado.httpclient import HTTPClientError

from tests.services import ADMIN_PASSWORD, postgres, s3  # noqa: F401

ROLE_PASSWORD = "reader-secret-pw"


@pytest.fixture
def team_store(postgres, s3, monkeypatch):  # noqa: F811
    """NBOPS_STORE / NBOPS_OBJECTS for the in-process server: a fresh database and bucket."""
    url, bucket = postgres.new_database(), s3.new_bucket()
    monkeypatch.setenv("NBOPS_STORE", url)
    monkeypatch.setenv("NBOPS_OBJECTS", bucket)
    monkeypatch.setenv("NBOPS_USER", "alice")
    return url, bucket


async def _get(jp_fetch, *parts, **params) -> tuple[dict, bytes]:
    response = await jp_fetch(*parts, params=params)
    return json.loads(response.body), response.body


def _no_secret(*bodies: bytes) -> None:
    for body in bodies:
        assert ADMIN_PASSWORD.encode() not in body
        assert ROLE_PASSWORD.encode() not in body


async def _wait(jp_fetch, run_id: str, path: str, timeout: float = 180) -> tuple[dict, bytes]:
    deadline = time.monotonic() + timeout
    while True:
        run, raw = await _get(jp_fetch, "nbops", "runs", run_id, path=path)
        if run["status"] != "running":
            return run, raw
        assert time.monotonic() < deadline, f"run {run_id} still running after {timeout}s"
        await asyncio.sleep(0.5)


def _assert_team_store(store: dict, bucket: str) -> None:
    assert store["kind"] == "postgresql"
    assert store["location"].startswith("postgresql://nbops:***@127.0.0.1:")
    assert store["location"].endswith(f" + {bucket}")
    assert store["objects"] == bucket
    assert store["shared_objects"] is True
    assert store["source"] == "NBOPS_STORE"


async def test_the_store_route_names_the_team_store_without_its_password(jp_fetch, team_store, pipeline_notebook):
    _, bucket = team_store
    store, raw = await _get(jp_fetch, "nbops", "store", path=pipeline_notebook)
    _assert_team_store(store, bucket)
    listed, raw_list = await _get(jp_fetch, "nbops", "runs", path=pipeline_notebook)
    assert listed == {"store": store, "runs": []}
    _no_secret(raw, raw_list)


async def test_the_store_route_before_any_run_says_where_the_embedded_store_will_be(jp_fetch, jp_root_dir, pipeline_notebook, monkeypatch):
    monkeypatch.delenv("NBOPS_STORE", raising=False)
    monkeypatch.delenv("NBOPS_OBJECTS", raising=False)
    store, _ = await _get(jp_fetch, "nbops", "store", path=pipeline_notebook)
    assert store["kind"] == "sqlite"
    assert store["location"] == str((jp_root_dir / "work" / ".nbops").resolve())
    assert store["source"] == "default"
    assert not (jp_root_dir / "work" / ".nbops").exists()  # asking creates nothing


async def test_a_run_in_the_team_store_says_who_ran_it_and_where_it_is(jp_fetch, team_store, pipeline_notebook):
    _, bucket = team_store
    response = await jp_fetch("nbops", "runs", method="POST", body=json.dumps({"path": pipeline_notebook, "params": {"n_rows": "40"}}))
    assert response.code == 201
    started = json.loads(response.body)
    _assert_team_store(started["store"], bucket)

    run, raw_run = await _wait(jp_fetch, started["id"], pipeline_notebook)
    assert run["status"] == "succeeded", run
    assert (run["user"], run["host"]) == ("alice", socket.gethostname())
    _assert_team_store(run["store"], bucket)

    listed, raw_list = await _get(jp_fetch, "nbops", "runs", path=pipeline_notebook)
    _assert_team_store(listed["store"], bucket)
    assert [(r["id"], r["user"], r["host"]) for r in listed["runs"]] == [(run["id"], "alice", socket.gethostname())]

    # The executed notebook comes back from the bucket.
    response = await jp_fetch("nbops", "runs", run["id"], "stages", "evaluate", "notebook", params={"path": pipeline_notebook})
    assert json.loads(response.body)["nbformat"] == 4
    _no_secret(response.body, raw_run, raw_list)


async def test_a_read_only_role_lists_runs_and_starting_one_is_a_403(jp_fetch, postgres, team_store, pipeline_notebook, monkeypatch):  # noqa: F811
    url, bucket = team_store
    response = await jp_fetch("nbops", "runs", method="POST", body=json.dumps({"path": pipeline_notebook}))
    run_id = json.loads(response.body)["id"]
    await _wait(jp_fetch, run_id, pipeline_notebook)

    reader = postgres.create_role(f"reader_{run_id[-6:]}", ROLE_PASSWORD, read_only_on=url)
    monkeypatch.setenv("NBOPS_STORE", reader)
    monkeypatch.setenv("NBOPS_USER", "bob")
    listed, raw_list = await _get(jp_fetch, "nbops", "runs", path=pipeline_notebook)
    assert listed["store"]["location"].startswith(f"postgresql://reader_{run_id[-6:]}:***@")
    assert [(r["id"], r["user"]) for r in listed["runs"]] == [(run_id, "alice")]
    run, raw_run = await _get(jp_fetch, "nbops", "runs", run_id, path=pipeline_notebook)
    assert run["user"] == "alice"

    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("nbops", "runs", method="POST", body=json.dumps({"path": pipeline_notebook}))
    assert info.value.code == 403
    answer = json.loads(info.value.response.body)
    assert answer["error"] == "ReadOnlyStoreError"
    assert answer["message"]
    _no_secret(raw_list, raw_run, info.value.response.body)
