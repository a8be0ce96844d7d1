"""Many runners on one team store at once (PostgreSQL + S3 or a shared folder), for real:
16 OS processes write runs concurrently (14 drive ``RunStore`` as a run does, 2 are real
``nbops run``s of one notebook in one folder) while a reader lists runs the whole time.
Every run ends complete, nothing deadlocks, each object is stored once, the cache answers
consistently, and a reader never sees a half-recorded run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from nbops.status import CACHED, DONE_OK, SUCCEEDED
from nbops.store import RunStore
from nbops.store.schema import stages
from tests.services import postgres, s3  # noqa: F401

from ..conftest import NBOPS, build_notebook, run_cli
from .runner import OUTPUTS, STAGES, cache_key, output_bytes

DRIVEN, REAL, ROUNDS = 14, 2, 3
VARIANTS = ("red", "blue")  # runners of one variant run the same notebook: the same cache keys and bytes
DEADLINE_S = 300  # every process ends by then, or something deadlocked
KEY = re.compile(r"^objects/[0-9a-f]{2}/[0-9a-f]{62}$")


def _spawn(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, Path]:
    out = log.with_suffix(".out")
    with open(out, "w") as stdout, open(log, "w") as stderr:
        return subprocess.Popen(args, cwd=cwd, env=env, stdout=stdout, stderr=stderr), out


def _wait_all(procs: dict[str, tuple[subprocess.Popen, Path]], deadline: float) -> None:
    for name, (proc, out) in procs.items():
        try:
            proc.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other, _ in procs.values():
                other.kill()
            pytest.fail(f"{name} did not finish within {DEADLINE_S} s: a deadlock or a lost lock")
        assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{out.with_suffix('.log').read_text()[-3000:]}"


@pytest.mark.parametrize("objects_kind", ["s3", "file"])
def test_sixteen_runners_and_a_reader_on_one_team_store(postgres, s3, tmp_path: Path, objects_kind: str):  # noqa: F811
    db = postgres.new_database()  # fresh: the runners' first opening migrates it, once, under the lock
    objects = s3.new_bucket() + "/objects" if objects_kind == "s3" else (tmp_path / "shared" / "objects").as_uri()
    env = {**os.environ, "NBOPS_STORE": db, "NBOPS_OBJECTS": objects, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    nb = build_notebook(tmp_path, [("x = list(range(1000))", ["stage:make"]), ("n = len(x)", ["stage:count"])], "shared.ipynb")
    logs = tmp_path / "logs"
    logs.mkdir()
    stop = tmp_path / "stop"
    runner = [sys.executable, "-m", "tests.team_faults.runner"]

    began = time.monotonic()
    deadline = began + DEADLINE_S
    procs = {f"real {i}": _spawn([*NBOPS, "run", str(nb)], tmp_path, env, logs / f"real{i}.log") for i in range(REAL)}
    for i in range(DRIVEN):
        args = [*runner, "drive", db, objects, str(tmp_path / f"ws{i}"), VARIANTS[i % 2], str(ROUNDS)]
        procs[f"runner {i}"] = _spawn(args, tmp_path, env, logs / f"runner{i}.log")
    reader = _spawn([*runner, "read", db, objects, str(stop)], tmp_path, env, logs / "reader.log")
    try:
        _wait_all(procs, deadline)
    finally:
        stop.touch()
    _wait_all({"reader": reader}, deadline)
    listings = json.loads(reader[1].read_text())["listings"]
    assert listings >= 3, "the reader never overlapped the writers"

    store = RunStore(db, objects=objects)
    runs = store.list_runs(limit=1000)
    assert len(runs) == DRIVEN * ROUNDS + REAL
    driven_ids = {i for name, (_, out) in procs.items() if name.startswith("runner") for i in json.loads(out.read_text())}
    assert len(driven_ids) == DRIVEN * ROUNDS and driven_ids <= {r["id"] for r in runs}
    referenced: set[str] = set()
    for run in runs:
        full = store.get_run(run["id"])
        assert full["status"] == SUCCEEDED, (run["id"], full["status"], full.get("error"))
        assert len(full["stages"]) == 2 and all(s["status"] in DONE_OK for s in full["stages"]), full["stages"]
        for s in full["stages"]:
            assert set(s["outputs"]) == OUTPUTS[s["name"]] and s["notebook_sha256"] and s["cache_key"], s
            referenced |= {meta["sha256"] for meta in s["outputs"].values()} | {s["notebook_sha256"]}
            if s["status"] == CACHED:
                source = store.get_run(s["cached_from"])  # reuse points at a run that computed it
                assert {t["name"]: t["status"] for t in source["stages"]}[s["name"]] == SUCCEEDED
    with store.db.read() as c:  # one row per (run, stage)
        doubled = c.execute(sa.select(stages.c.run_id, stages.c.name).group_by(stages.c.run_id, stages.c.name).having(sa.func.count() > 1)).all()
    assert doubled == []

    # The cache: one answer per key, every record with the bytes every runner computed.
    for variant in VARIANTS:
        for stage in STAGES:
            found = store.find_cached(cache_key(variant, stage), limit=100)
            assert found, (variant, stage)
            digests = {r["outputs"]["value"]["sha256"] for r in found}
            assert len(digests) == 1 and len({r["run_id"] for r in found}) == len(found)
            (digest,) = digests
            assert store.objects.verify(digest)
            assert digest == __import__("hashlib").sha256(output_bytes(variant, stage)).hexdigest()
    real = [r for r in runs if r["notebook"] == str(nb.resolve())]
    assert len(real) == REAL
    for name in ("make", "count"):
        rows = [next(s for s in store.get_run(r["id"])["stages"] if s["name"] == name) for r in real]
        assert len({s["cache_key"] for s in rows}) == 1  # one notebook: one key
        computed = store.find_cached(rows[0]["cache_key"])
        assert computed and len({json.dumps({v: m["sha256"] for v, m in c["outputs"].items()}) for c in computed}) == 1

    # Objects: each stored once (one key per digest, nothing left half-written), each intact.
    stored = dict(store.objects.digests())
    assert referenced <= set(stored)
    assert set(stored) == referenced  # no object that no record names (a lost or duplicated upload)
    assert all(store.objects.verify(d) for d in referenced)
    if objects_kind == "s3":
        bucket = objects.removeprefix("s3://").split("/")[0]
        keys = [o["Key"] for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in page.get("Contents", [])]
        assert len(keys) == len(set(keys)) == len(referenced) and all(KEY.match(k) for k in keys), keys
    else:
        root = Path(objects.removeprefix("file://"))
        assert not list((root / "tmp").glob("*")) if (root / "tmp").exists() else True

    listed = run_cli("runs", "ls", "--json", cwd=tmp_path, env={"NBOPS_STORE": db, "NBOPS_OBJECTS": objects})
    assert listed.returncode == 0, listed.stderr
    assert {r["status"] for r in json.loads(listed.stdout)} == {SUCCEEDED}
