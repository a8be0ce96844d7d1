"""The run store you can trust: layout versions and migration, verified objects,
``nbops store verify|gc|info``. Runs are made with the store API (no kernels),
except one end-to-end run of a real notebook."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from nbops.cli.main import main
from nbops.errors import CorruptObjectError, StoreError
from nbops.store import RunStore, maintenance
from nbops.store.run_store import SCHEMA_VERSION

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "v0"
OLD_RUN = "20261101-120000-abc123"


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    dest = tmp_path / "store"
    shutil.copytree(FIXTURE, dest)
    return dest


def _file(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def make_run(rs: RunStore, tmp: Path, run_id: str, started_at: float, payload: bytes) -> dict[str, str]:
    """One succeeded run of two stages (load -> train), each with an output, an executed notebook and (train) a logged artifact."""
    rs.create_run(run_id, notebook="/nb.ipynb", status="succeeded", started_at=started_at)
    digests = {}
    for pos, name in enumerate(["load", "train"]):
        out = rs.objects.put_file(_file(tmp, f"{run_id}-{name}.bin", payload + name.encode()))
        nb = rs.objects.put_file(_file(tmp, f"{run_id}-{name}.ipynb", b'{"cells": [], "run": "' + run_id.encode() + name.encode() + b'"}'))
        artifacts = []
        if name == "train":
            art = rs.objects.put_file(_file(tmp, f"{run_id}-plot.png", b"png" + payload))
            artifacts = [{"name": "plot", "file": "plot.png", "sha256": art, "bytes": len(b"png" + payload)}]
            digests["artifact"] = art
        rs.put_stage(
            run_id, name, pos, status="succeeded", started_at=started_at, ended_at=started_at + 1, cache_key=f"key-{name}-{payload.decode()}",
            notebook_sha256=nb, outputs={"x": {"file": "x.pkl", "sha256": out, "bytes": len(payload + name.encode())}}, artifacts=artifacts,
        )  # fmt: skip
        digests[name], digests[f"{name}_nb"] = out, nb
    (rs.run_dir(run_id) / "artifacts").mkdir(parents=True)
    (rs.run_dir(run_id) / "artifacts" / "scratch.txt").write_text("x" * 100)
    return digests


def damage(rs: RunStore, digest: str, how: str) -> None:
    path = rs.objects.path(digest)
    if how == "delete":
        path.unlink()
        return
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


def user_version(root: Path) -> int:
    with sqlite3.connect(root / "runs.db") as c:
        return c.execute("PRAGMA user_version").fetchone()[0]


# -- layout versions -------------------------------------------------------------------
def test_old_store_is_migrated_once_and_keeps_its_run(old_store, capsys):
    assert user_version(old_store) == 0
    with sqlite3.connect(old_store / "runs.db") as c:
        assert "reason" not in {r[1] for r in c.execute("PRAGMA table_info(stages)")}
    rs = RunStore(old_store, create=False)
    # A store from before Alembic: its columns say layout 1; it is stamped there, then upgraded.
    assert rs.migrated_from == "0001" and rs.schema_version() == SCHEMA_VERSION == user_version(old_store)
    run = rs.get_run(OLD_RUN)
    assert [s["name"] for s in run["stages"]] == ["load", "train"]
    assert run["stages"][0]["key_parts"] == {} and run["stages"][0]["deps"] == [] and run["stages"][0]["unusable"] is None
    assert RunStore(old_store).migrated_from is None  # the second open finds it current

    assert main(["runs", "ls", "--store", str(old_store), "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [OLD_RUN]
    assert main(["runs", "show", OLD_RUN, "--store", str(old_store), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["params"] == {"n": 3} and [s["status"] for s in shown["stages"]] == ["succeeded", "succeeded"]
    assert main(["store", "verify", "--store", str(old_store)]) == 0  # its objects came along intact


def test_store_with_later_columns_but_no_version_is_migrated(tmp_path):
    """Stores written between the first release and versioning already have reason/key_parts/deps."""
    make_run(RunStore(tmp_path / "s"), tmp_path, "20261120-100000-aaaaaa", time.time(), b"one")
    with sqlite3.connect(tmp_path / "s" / "runs.db") as c:
        c.execute("ALTER TABLE stages DROP COLUMN unusable")
        c.execute("PRAGMA user_version = 0")
    with sqlite3.connect(tmp_path / "s" / "runs.db") as c:
        # as the release before Alembic left it: no tables of later revisions either
        later = ("models", "model_versions", "model_aliases", "alias_events", "serve_requests", "feature_tables", "feature_versions", "feature_online",
                 "schedules", "schedule_firings", "schedule_events", "schedulers")  # fmt: skip
        c.executescript("".join(f"DROP TABLE {t}; " for t in later))
        c.executescript(
            "DROP TABLE alembic_version; DROP INDEX runs_status; DROP INDEX runs_user; ALTER TABLE runs DROP COLUMN user; ALTER TABLE runs DROP COLUMN trigger"
        )
    rs = RunStore(tmp_path / "s")
    assert rs.migrated_from == "0002" and rs.schema_version() == SCHEMA_VERSION
    assert [s["run_id"] for s in rs.find_cached("key-load-one")] == ["20261120-100000-aaaaaa"]


def test_store_from_a_newer_nbops_is_refused(tmp_path, capsys):
    RunStore(tmp_path)
    with sqlite3.connect(tmp_path / "runs.db") as c:
        c.execute(f"UPDATE alembic_version SET version_num = '{SCHEMA_VERSION + 1:04d}'")
    with pytest.raises(StoreError, match=f"layout {SCHEMA_VERSION + 1:04d}, newer") as exc:
        RunStore(tmp_path)
    assert "upgrade nbops" in exc.value.fix
    assert main(["store", "info", "--store", str(tmp_path)]) == 3
    assert "newer than this nbops" in capsys.readouterr().err


# -- objects ---------------------------------------------------------------------------
def test_check_verify_and_materialize_refuse_damaged_objects(tmp_path):
    rs = RunStore(tmp_path / "s")
    d = rs.objects.put_file(_file(tmp_path, "a", b"hello world"))
    assert rs.objects.check(d, 11) is None and rs.objects.check(d) is None and rs.objects.verify(d)
    rs.objects.materialize(d, tmp_path / "out" / "a", size=11)
    assert (tmp_path / "out" / "a").read_bytes() == b"hello world"
    path = rs.objects.path(d)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    path.write_bytes(b"hello")
    assert rs.objects.check(d, 11) == "truncated" and not rs.objects.verify(d)
    with pytest.raises(CorruptObjectError) as exc:
        rs.objects.materialize(d, tmp_path / "out" / "b", size=11)
    assert exc.value.digest == d and exc.value.exit_code == 3 and not (tmp_path / "out" / "b").exists()
    path.unlink()
    assert rs.objects.check(d) == "missing" and not rs.objects.verify(d)
    with pytest.raises(CorruptObjectError, match="missing"):
        rs.objects.materialize(d, tmp_path / "out" / "c")


# -- verify ----------------------------------------------------------------------------
def test_verify_names_run_and_stage_and_repair_stops_reuse(tmp_path, capsys):
    rs = RunStore(tmp_path / "s")
    d = make_run(rs, tmp_path, "20261120-100000-aaaaaa", time.time(), b"one")
    damage(rs, d["load"], "flip")
    damage(rs, d["artifact"], "delete")
    report = maintenance.verify(rs)
    found = {p["digest"]: p for p in report["problems"]}
    assert found[d["load"]]["problem"] == "corrupt" and found[d["artifact"]]["problem"] == "missing" and len(found) == 2
    assert found[d["load"]]["refs"] == [{"run": "20261120-100000-aaaaaa", "stage": "load", "what": "output x", "bytes": 7}]
    assert found[d["artifact"]]["refs"][0]["stage"] == "train" and found[d["artifact"]]["refs"][0]["what"] == "artifact plot"
    assert rs.objects.has(d["load"])  # no --repair: nothing changes
    assert [s["run_id"] for s in rs.find_cached("key-load-one")] == ["20261120-100000-aaaaaa"]

    assert main(["store", "verify", "--store", str(rs.root)]) == 3
    out = capsys.readouterr().out
    assert "corrupt" in out and "run 20261120-100000-aaaaaa stage load (output x)" in out

    assert main(["store", "verify", "--repair", "--store", str(rs.root), "--json"]) == 0
    repaired = json.loads(capsys.readouterr().out)
    assert {(m["run"], m["stage"]) for m in repaired["marked_unusable"]} == {("20261120-100000-aaaaaa", "load"), ("20261120-100000-aaaaaa", "train")}
    assert not rs.objects.has(d["load"])  # the corrupt one is gone
    assert rs.find_cached("key-load-one") == [] and rs.find_cached("key-train-one") == []
    stage = rs.get_run("20261120-100000-aaaaaa")["stages"][0]
    assert "output x corrupt" in stage["unusable"]["reason"] and stage["status"] == "succeeded"  # history kept
    assert maintenance.verify(rs)["problems"][0]["problem"] == "missing"  # the record still names what it lost


# -- gc --------------------------------------------------------------------------------
def test_gc_by_policy_keeps_everything_kept_runs_reference(tmp_path, capsys):
    rs = RunStore(tmp_path / "s")
    now = time.time()
    old = make_run(rs, tmp_path, "20261001-100000-000001", now - 40 * 86400, b"old")
    shared = make_run(rs, tmp_path, "20261002-100000-000002", now - 39 * 86400, b"new")  # same bytes as the new run's
    new = make_run(rs, tmp_path, "20261129-100000-000003", now - 3600, b"new")
    stray = rs.objects.put_file(_file(tmp_path, "stray", b"nobody needs me"))
    before = {p for p in rs.objects.root.rglob("*") if p.is_file()}

    dry = maintenance.gc(rs, older_than_s=30 * 86400, dry_run=True, grace_s=0)
    assert set(dry["runs_removed"]) == {"20261001-100000-000001", "20261002-100000-000002"}
    assert set(dry["objects_removed"]) == {old["load"], old["train"], old["artifact"], old["load_nb"], old["train_nb"], stray,
                                             shared["load_nb"], shared["train_nb"]}  # fmt: skip
    assert dry["bytes"] > 200 and {p for p in rs.objects.root.rglob("*") if p.is_file()} == before
    assert len(rs.list_runs()) == 3 and rs.run_dir("20261001-100000-000001").exists()

    assert main(["store", "gc", "--older-than", "30d", "--dry-run", "--store", str(rs.root)]) == 0
    assert "would remove 2 runs" in capsys.readouterr().out  # the CLI's grace keeps the young objects

    done = maintenance.gc(rs, older_than_s=30 * 86400, grace_s=0)
    assert done["objects_removed"] == dry["objects_removed"]
    assert [r["id"] for r in rs.list_runs()] == ["20261129-100000-000003"]
    assert not rs.run_dir("20261001-100000-000001").exists() and rs.run_dir("20261129-100000-000003").exists()
    for digest in new.values():  # including what the removed run shared with the kept one
        assert rs.objects.verify(digest)
    assert shared["load"] == new["load"] and not rs.objects.has(stray) and not rs.objects.has(old["artifact"])
    assert maintenance.verify(rs)["problems"] == []


def test_gc_keep_last_and_no_policy(tmp_path):
    rs = RunStore(tmp_path / "s")
    now = time.time()
    for i in range(3):
        make_run(rs, tmp_path, f"2026110{i + 1}-100000-00000{i}", now - (3 - i) * 86400, f"r{i}".encode())
    assert maintenance.gc(rs, grace_s=0)["runs_removed"] == []  # no policy: only unreferenced objects may go
    result = maintenance.gc(rs, keep_last=1, grace_s=0)
    assert result["runs_removed"] == ["20261102-100000-000001", "20261101-100000-000000"]
    assert [r["id"] for r in rs.list_runs()] == ["20261103-100000-000002"]
    assert maintenance.info(rs)["objects"] == 5  # 2 outputs, 2 notebooks, 1 artifact


# -- info ------------------------------------------------------------------------------
def test_info_counts(tmp_path, capsys):
    rs = RunStore(tmp_path / "s")
    make_run(rs, tmp_path, "20261120-100000-aaaaaa", time.time(), b"one")
    make_run(rs, tmp_path, "20261121-100000-bbbbbb", time.time(), b"one")  # same objects: stored once
    assert main(["store", "info", "--store", str(rs.root), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["schema_version"] == SCHEMA_VERSION and got["runs"] == 2 and got["stages"] == 4
    assert got["objects"] == 5 + 2  # each run's notebooks differ (they name the run), outputs and artifact are shared
    assert got["object_bytes"] > 0 and got["total_bytes"] > got["object_bytes"]


# -- end to end --------------------------------------------------------------------------
def test_real_run_verify_repair_then_the_stage_is_recomputed(workdir):
    from nbops import api

    nb = workdir / "kale.ipynb"
    first = api.run(nb)
    assert first["status"] == "succeeded"
    rs = RunStore(workdir / ".nbops", create=False)
    assert maintenance.verify(rs)["problems"] == []
    load = next(s for s in first["stages"] if s["name"] == "load")
    digest = next(iter(load["outputs"].values()))["sha256"]
    damage(rs, digest, "flip")
    report = maintenance.verify(rs, repair=True)
    assert [(p["problem"], p["refs"][0]["stage"]) for p in report["problems"]] == [("corrupt", "load")]
    again = api.run(nb)
    assert {s["name"]: s["status"] for s in again["stages"]}["load"] == "succeeded"  # not served from the damaged record
    assert rs.objects.verify(digest) and maintenance.verify(rs)["problems"] == []
