"""The CLI of a team store: --objects everywhere, who ran what, store migrate/info, and a role that may only read."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from nbops.cli.main import build_parser, main
from nbops.store import RunStore, new_run_id
from nbops.store.objects import open_objects
from nbops.store.schema import HEAD
from tests.conftest import build_notebook, run_cli
from tests.services import postgres, s3, store_backend  # noqa: F401

FIXTURE_V0 = Path(__file__).resolve().parent.parent / "store" / "fixtures" / "v0"


def _subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command words, parser) for every leaf command of the CLI."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, child in action.choices.items():
            yield from _subcommands(child, (*path, name))


def test_every_command_that_takes_a_store_takes_objects_and_says_where_the_store_comes_from():
    with_store = 0
    for words, parser in _subcommands(build_parser()):
        options = {o: a for a in parser._actions for o in a.option_strings}
        if "--store" not in options:
            continue
        with_store += 1
        assert "--objects" in options, f"nbops {' '.join(words)} takes --store but not --objects"
        text = " ".join(options["--store"].help.split())
        assert "postgresql://" in text and "folder" in text, words
        if words != ("test",):  # nbops test uses a fresh temporary store unless --store
            assert "$NBOPS_STORE" in text and "nbops.toml" in text and "[tool.nbops]" in text, words
        assert "$NBOPS_OBJECTS" in options["--objects"].help
    assert with_store >= 12  # run, runs ls/show/diff, resume, rerun, open, why, report, test, sweep, store verify/gc/info/migrate


def test_objects_flag_reaches_the_settings_and_is_put_back(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("NBOPS_OBJECTS", raising=False)
    shared = tmp_path / "shared objects"
    assert main(["store", "info", "--store", str(tmp_path / "store"), "--objects", str(shared), "--json"]) == 2  # no store yet: nothing made
    assert not shared.exists() and not (tmp_path / "store").exists()
    RunStore(tmp_path / "store")
    capsys.readouterr()
    assert main(["store", "info", "--store", str(tmp_path / "store"), "--objects", str(shared), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["objects_location"] == f"file://{shared.resolve()}"
    assert "NBOPS_OBJECTS" not in os.environ  # main() also runs in-process (tests, servers): the flag does not leak
    assert main(["store", "info", "--store", str(tmp_path / "store"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["objects_location"] == str((tmp_path / "store" / "objects").resolve())


def _record(rs: RunStore, user: str, host: str, started_at: float, value: int) -> str:
    """A finished run of two stages, recorded as a driver records it (no kernels: these tests are about reading)."""
    run_id = new_run_id()
    rs.create_run(run_id, notebook="/work/nb.ipynb", params={"n": value}, user=user, started_at=started_at)
    rs.update_run(run_id, host=host, status="succeeded", ended_at=started_at + 2)
    for position, name in enumerate(("make", "count")):
        reason = {"kind": "first-run", "detail": "no earlier run of this stage in the store"}
        rs.put_stage(run_id, name, position, status="succeeded", started_at=started_at, ended_at=started_at + 1, reason=reason,
                     metrics=[{"name": "total", "value": value, "step": None}] if name == "count" else [])  # fmt: skip
    return run_id


def test_runs_ls_filters_by_user_and_every_listing_names_the_author_and_the_store(store_backend, tmp_path, monkeypatch, capsys):  # noqa: F811
    store = store_backend.store or str(tmp_path / "store")
    for key, value in {"NBOPS_STORE": store, **store_backend.env}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    rs = RunStore(store, objects=store_backend.objects)
    now = time.time()
    alice = _record(rs, "alice", "laptop", now - 30, 1)
    bob = _record(rs, "bob", "gpu-box", now - 20, 2)
    alice2 = _record(rs, "alice", "laptop", now - 10, 3)

    def cli(*args: str):
        code = main(list(args))
        out = capsys.readouterr()
        assert code == 0, out.err
        assert "nbops-secret" not in out.out + out.err
        return json.loads(out.out) if "--json" in args else out.out

    listed = cli("runs", "ls", "--json")
    assert [r["id"] for r in listed] == [alice2, bob, alice]
    assert {(r["user"], r["host"]) for r in listed} == {("alice", "laptop"), ("bob", "gpu-box")}
    assert {r["store"] for r in listed} == {rs.location}
    if store_backend.store:
        assert "nbops-secret" not in rs.location and "***" in rs.location
    assert [r["id"] for r in cli("runs", "ls", "--user", "alice", "--json")] == [alice2, alice]
    assert cli("runs", "ls", "--user", "carol", "--json") == []

    table = cli("runs", "ls")
    assert "author" in table.splitlines()[0].split()
    assert "bob@gpu-box" in table and table.count("alice@laptop") == 2

    run = cli("runs", "show", bob, "--json")
    assert (run["user"], run["host"], run["store"]) == ("bob", "gpu-box", rs.location)
    text = cli("runs", "show", "latest~1")
    assert "author    bob@gpu-box" in text and f"store     {rs.location}" in text
    assert cli("why", bob, "--json")["store"] == rs.location
    assert cli("runs", "diff", alice, bob, "--json")["store"] == rs.location


def test_a_run_records_who_ran_it(tmp_path):
    nb = build_notebook(tmp_path, [("n = 2", ["stage:make"])], "who.ipynb")
    done = run_cli("run", str(nb), "--json", cwd=tmp_path, env={"NBOPS_USER": "dana"})
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["user"] == "dana" and run["host"] == os.uname().nodename
    assert [r["id"] for r in json.loads(run_cli("runs", "ls", "--user", "dana", "--json", "--notebook", str(nb)).stdout)] == [run["id"]]


def test_store_migrate_says_from_which_layout_to_which(tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(FIXTURE_V0, old)
    assert main(["store", "migrate", "--store", str(old)]) == 0
    out = capsys.readouterr()
    assert f"migrated the run store {old.resolve()} from layout 1 to layout {int(HEAD)}" in out.out
    with sqlite3.connect(old / "runs.db") as c:
        assert c.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)
    assert main(["store", "migrate", "--store", str(old), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"store": str(old.resolve()), "kind": "sqlite", "from": int(HEAD), "to": int(HEAD), "migrated": False}
    assert main(["store", "migrate", "--store", str(tmp_path / "nothing")]) == 2  # nothing is made by asking
    assert "no runs yet" in capsys.readouterr().err and not (tmp_path / "nothing").exists()


def test_store_migrate_and_info_on_postgresql_mask_the_password(postgres, s3, tmp_path):  # noqa: F811
    url = postgres.new_database()
    bucket = s3.new_bucket() + "/team"
    fresh = run_cli("store", "migrate", "--store", url, "--json", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads(fresh.stdout) | {"store": None} == {"store": None, "kind": "postgresql", "from": None, "to": int(HEAD), "migrated": True}
    again = run_cli("store", "migrate", "--store", url, cwd=tmp_path)
    assert f"already has the newest layout ({int(HEAD)})" in again.stdout
    info = run_cli("store", "info", "--store", url, "--objects", bucket, cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "kind postgresql, objects in " + bucket in info.stdout and f"(layout version {int(HEAD)})" in info.stdout
    assert "nbops:***@" in info.stdout
    for proc in (fresh, again, info):
        assert "nbops-secret" not in proc.stdout + proc.stderr


@pytest.fixture
def read_only(postgres, tmp_path):  # noqa: F811
    """A PostgreSQL store holding one real run (written by the owner), and a role that may only read it."""
    url = postgres.new_database()
    objects = (tmp_path / "shared").as_uri()
    env = {"NBOPS_STORE": url, "NBOPS_OBJECTS": objects}
    nb = build_notebook(tmp_path, [("x = list(range(5))", ["stage:make"]), ("n = len(x)", ["stage:count"])], "team.ipynb")
    done = run_cli("run", str(nb), "--json", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    reader = postgres.create_role("reader", "reader-pw", read_only_on=url)
    return nb, json.loads(done.stdout)["id"], {"NBOPS_STORE": reader, "NBOPS_OBJECTS": objects}


def test_a_read_only_role_reads_everything_and_gets_exit_3_on_writes(read_only, tmp_path):
    nb, run_id, env = read_only
    work = tmp_path / "elsewhere"
    work.mkdir()
    for args in (
        ("runs", "ls"), ("runs", "show", "latest"), ("runs", "diff", run_id, "latest"),
        ("why", run_id), ("store", "info"), ("store", "verify"), ("open", run_id, "make"),
    ):  # fmt: skip
        proc = run_cli(*args, cwd=work, env=env)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        assert run_id in proc.stdout or args[0] == "store" or "count" in proc.stdout, args
        assert "reader-pw" not in proc.stdout + proc.stderr
    laptop = tmp_path / "laptop"
    laptop_run = _record(RunStore(laptop), "erin", "laptop", time.time(), 1)
    (tmp_path / "blob").write_bytes(b"bytes only the laptop has")
    blob = RunStore(laptop).objects.put_file(tmp_path / "blob")
    RunStore(laptop).put_stage(laptop_run, "make", 0, status="succeeded", notebook_sha256=blob)  # the copy would have to carry this object
    for args in (("run", str(nb), "--no-cache"), ("store", "copy", str(laptop), env["NBOPS_STORE"])):
        proc = run_cli(*args, cwd=work, env=env)
        assert proc.returncode == 3, (args, proc.stdout, proc.stderr)
        assert "read-only store" in proc.stderr and "reader:***@" in proc.stderr, proc.stderr
        assert "reader-pw" not in proc.stdout + proc.stderr
    listed = json.loads(run_cli("runs", "ls", "--json", cwd=work, env=env).stdout)
    assert [r["id"] for r in listed] == [run_id]  # the refused writes left nothing behind
    assert blob not in {d for d, _ in open_objects(env["NBOPS_OBJECTS"], tmp_path / "unused").digests()}  # refused before any object went
