"""One suite of RunStore behaviour, run on every backend: embedded SQLite, PostgreSQL + S3
(moto over HTTP), PostgreSQL + a shared folder (``store_backend`` in tests/services.py).

Also: migrations (once, under a lock, a newer layout refused), where the settings come
from (flag > env > nbops.toml / pyproject upward from the notebook), and that a database
password never shows in a location or an error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from nbops.errors import CorruptObjectError, StoreError, UsageError
from nbops.store import RunStore, maintenance, mask_url, new_run_id, open_store, resolve_settings
from nbops.store.schema import HEAD
from tests.conftest import ROOT
from tests.services import ADMIN_PASSWORD

NOTEBOOK = "/projects/demo/nb.ipynb"


@pytest.fixture
def store(store_backend, tmp_path) -> RunStore:
    return open_store(store_backend.store, tmp_path / "nb.ipynb", objects=store_backend.objects)


def _run(store: RunStore, *, notebook: str = NOTEBOOK, started: float | None = None, **fields) -> str:
    run_id = new_run_id()
    store.create_run(run_id, notebook=notebook, started_at=started if started is not None else time.time(), **fields)
    return run_id


def _succeeded(store: RunStore, run_id: str, name: str, key: str, ended: float, **fields) -> None:
    fields = {"notebook_sha256": "ab" * 32, "key_parts": {"v": 2}, **fields}
    store.put_stage(run_id, name, 0, status="succeeded", started_at=ended - 1, ended_at=ended, cache_key=key, **fields)


def _stamp(store: RunStore, revision: str) -> None:
    with store.db.write() as c:
        c.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


def _overwrite(objects, digest: str, data: bytes) -> None:
    """Damage an object in place, as a disk or a careless hand would."""
    if hasattr(objects, "path"):  # a folder: objects are read-only files
        path = objects.path(digest)
        os.chmod(path, 0o644)
        path.write_bytes(data)
    else:
        objects.fs.pipe_file(objects.key(digest), data)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- records ---------------------------------------------------------------------


def test_create_update_and_put_stage_upsert(store):
    run_id = _run(store, params={"n": 3}, user="alice")
    store.put_stage(run_id, "load", 0, status="running", started_at=1.0)
    store.put_stage(run_id, "load", 0, status="succeeded", ended_at=2.0, outputs={"df": {"sha256": "cd" * 32, "bytes": 4}})
    store.put_stage(run_id, "train", 1, status="pending")
    store.update_run(run_id, status="succeeded", ended_at=3.0, report={"ok": True})
    run = store.get_run(run_id)
    assert run["status"] == "succeeded" and run["params"] == {"n": 3} and run["report"] == {"ok": True}
    assert run["user"] == "alice" and run["host"] and run["pid"] == os.getpid()
    assert [(s["name"], s["status"]) for s in run["stages"]] == [("load", "succeeded"), ("train", "pending")]
    load = run["stages"][0]
    assert load["started_at"] == 1.0 and load["ended_at"] == 2.0  # the upsert kept the earlier column
    assert load["outputs"] == {"df": {"sha256": "cd" * 32, "bytes": 4}}


def test_get_run_of_an_unknown_id_names_the_store(store):
    from nbops.errors import NotFoundError

    with pytest.raises(NotFoundError) as err:
        store.get_run("20260101-000000-abcdef")
    assert "20260101-000000-abcdef" in err.value.message
    with pytest.raises(UsageError):
        store.get_run("../etc")


def test_list_runs_newest_first_with_filters_limit_and_brief(store):
    now = time.time()
    ids = [
        _run(store, started=now - 30, user="alice", notebook="/a/x.ipynb", status="succeeded"),
        _run(store, started=now - 20, user="bob", notebook="/a/x.ipynb", status="succeeded", study="s1", trial=0),
        _run(store, started=now - 10, user="alice", notebook="/b/y.ipynb", status="succeeded", study="s1", trial=1),
    ]
    for i, run_id in enumerate(ids):
        store.put_stage(run_id, "only", 0, status="succeeded", metrics=[{"name": "m", "value": i}], scalars={"m": i})
    assert [r["id"] for r in store.list_runs()] == ids[::-1]
    assert [r["id"] for r in store.list_runs(limit=2)] == [ids[2], ids[1]]
    assert [r["id"] for r in store.list_runs(user="alice")] == [ids[2], ids[0]]
    assert [r["id"] for r in store.list_runs(notebook="/a/x.ipynb")] == [ids[1], ids[0]]
    assert [r["id"] for r in store.list_runs(study="s1")] == [ids[2], ids[1]]
    assert store.list_runs(user="carol") == []
    full, brief = store.list_runs(limit=1)[0], store.list_runs(limit=1, brief=True)[0]
    assert full["stages"][0]["scalars"] == {"m": 2} and full["stages"][0]["metrics"] == [{"name": "m", "value": 2}]
    assert brief["stages"] == [{"run_id": ids[2], "name": "only", "status": "succeeded"}]


def test_find_cached_newest_first_skipping_unusable_and_failed(store):
    now = time.time()
    old, new, spoiled, failed, other = (_run(store, started=now - 50 + i) for i in range(5))
    _succeeded(store, old, "fit", "k1", now - 40)
    _succeeded(store, new, "fit", "k1", now - 10)
    _succeeded(store, spoiled, "fit", "k1", now - 5)
    store.put_stage(failed, "fit", 0, status="failed", ended_at=now - 1, cache_key="k1", notebook_sha256="ab" * 32)
    _succeeded(store, other, "fit", "k2", now)
    assert [r["run_id"] for r in store.find_cached("k1")] == [spoiled, new, old]
    store.mark_unusable({(spoiled, "fit"): {"reason": "output df corrupt"}})
    assert [r["run_id"] for r in store.find_cached("k1")] == [new, old]
    assert [r["run_id"] for r in store.find_cached("k1", limit=1)] == [new]
    assert store.find_cached("nope") == []


def test_last_execution_is_the_newest_that_ran_or_was_reused(store):
    now = time.time()
    first, second, failed = (_run(store, started=now - 30 + i) for i in range(3))
    _succeeded(store, first, "fit", "k1", now - 20)
    store.put_stage(second, "fit", 0, status="cached", started_at=now - 10, ended_at=now - 10, cache_key="k1", key_parts={"v": 2}, cached_from=first)
    store.put_stage(failed, "fit", 0, status="failed", started_at=now - 5, cache_key="k1", key_parts={"v": 2})
    assert store.last_execution(NOTEBOOK, "fit")["run_id"] == second
    assert store.last_execution(NOTEBOOK, "fit", before=now - 15)["run_id"] == first
    # A colleague's checkout of the same notebook (another folder, same name) is the baseline too.
    assert store.last_execution(f"/elsewhere/{Path(NOTEBOOK).name}", "fit")["run_id"] == second
    assert store.last_execution("/elsewhere/other.ipynb", "fit") is None
    assert store.last_execution(NOTEBOOK, "other") is None


def test_mark_interrupted_dead_pid_here_and_stale_heartbeat_elsewhere(store):
    dead_here = _run(store)
    store.update_run(dead_here, pid=_dead_pid(), pid_start="1")
    store.put_stage(dead_here, "a", 0, status="running")
    store.put_stage(dead_here, "b", 1, status="pending")
    stale = _run(store)
    store.update_run(stale, host="another-host.example", heartbeat=time.time() - 3600)
    fresh = _run(store)
    store.update_run(fresh, host="another-host.example", heartbeat=time.time())
    alive_here = _run(store)  # this process: alive
    by_id = {r["id"]: r for r in store.list_runs()}
    assert by_id[dead_here]["status"] == "interrupted"
    assert by_id[stale]["status"] == "interrupted" and by_id[stale]["ended_at"] == pytest.approx(time.time() - 3600, abs=60)
    assert by_id[fresh]["status"] == "running" and by_id[alive_here]["status"] == "running"
    stages = {s["name"]: s for s in store.get_run(dead_here)["stages"]}
    assert stages["a"]["status"] == "failed" and stages["a"]["error"]["ename"] == "Interrupted"
    assert stages["b"]["status"] == "skipped"


def test_studies_round_trip_and_upsert(store):
    assert store.get_study("s1") is None
    store.put_study("s1", {"space": {"lr": [0.1, 0.2]}, "metric": "loss"})
    store.put_study("s1", {"space": {"lr": [0.3]}, "metric": "loss"})
    study = store.get_study("s1")
    assert study["name"] == "s1" and study["space"] == {"lr": [0.3]} and study["created_at"] > 0


def test_import_run_copies_a_run_once(store, tmp_path):
    source = RunStore(tmp_path / "elsewhere")
    run_id = _run(source, params={"n": 1}, user="bob")
    _succeeded(source, run_id, "fit", "k9", time.time(), deps=[{"kind": "file", "key": "file:data.csv", "path": "data.csv", "sha256": None}])
    source.update_run(run_id, status="succeeded", ended_at=time.time())
    run = source.get_run(run_id)
    assert store.import_run(run) is True
    assert store.import_run(run) is False
    copied = store.get_run(run_id)
    assert copied["user"] == "bob" and copied["params"] == {"n": 1} and copied["stages"][0]["deps"] == run["stages"][0]["deps"]
    assert [r["run_id"] for r in store.find_cached("k9")] == [run_id]


# -- objects ---------------------------------------------------------------------


def test_objects_put_check_verify_materialize_delete(store, tmp_path):
    src = tmp_path / "a.bin"
    src.write_bytes(b"hello team store\n" * 100)
    digest = store.objects.put_file(src)
    assert store.objects.put_file(src) == digest  # once per digest
    size = src.stat().st_size
    assert store.objects.check(digest, size) is None and store.objects.check(digest) is None
    assert store.objects.check(digest, size + 1) == "truncated"
    assert store.objects.verify(digest)
    assert (digest, size) in set(store.objects.digests())
    store.objects.materialize(digest, tmp_path / "out" / "copy.bin", size)
    assert (tmp_path / "out" / "copy.bin").read_bytes() == src.read_bytes()
    store.objects.delete(digest)
    assert store.objects.check(digest) == "missing" and not store.objects.verify(digest)
    assert digest not in {d for d, _ in store.objects.digests()}
    with pytest.raises(CorruptObjectError):
        store.objects.materialize(digest, tmp_path / "gone.bin")
    assert not (tmp_path / "gone.bin").exists()


def test_a_damaged_object_is_refused(store, tmp_path):
    src = tmp_path / "a.bin"
    src.write_bytes(b"0123456789" * 50)
    digest = store.objects.put_file(src)
    _overwrite(store.objects, digest, b"x" * 500)  # same size, other bytes
    assert not store.objects.verify(digest)
    if not hasattr(store.objects, "path"):  # a download is hashed on the way; a local link is hashed when loaded
        with pytest.raises(CorruptObjectError):
            store.objects.materialize(digest, tmp_path / "bad.bin", 500)
    _overwrite(store.objects, digest, b"0123")  # truncated: refused by the cheap check everywhere
    dest = tmp_path / "dest.bin"
    dest.write_bytes(b"kept")
    with pytest.raises(CorruptObjectError) as err:
        store.objects.materialize(digest, dest, 500)
    assert "truncated" in str(err.value.message)
    assert dest.read_bytes() == b"kept"


# -- maintenance -----------------------------------------------------------------


def _store_with_outputs(store: RunStore, tmp_path: Path) -> tuple[str, str, str]:
    """One run whose stage references an object, and one object nothing references."""
    kept_file, loose_file = tmp_path / "kept.bin", tmp_path / "loose.bin"
    kept_file.write_bytes(b"referenced" * 10)
    loose_file.write_bytes(b"orphan" * 10)
    kept = store.objects.put_file(kept_file)
    loose = store.objects.put_file(loose_file)
    run_id = _run(store, status="succeeded")
    _succeeded(store, run_id, "fit", "k1", time.time(), outputs={"df": {"sha256": kept, "bytes": 100}}, notebook_sha256=kept)
    return run_id, kept, loose


def test_verify_finds_and_repairs_a_corrupt_object(store, tmp_path):
    run_id, kept, _ = _store_with_outputs(store, tmp_path)
    clean = maintenance.verify(store)
    assert clean["problems"] == [] and clean["objects"] == 2
    _overwrite(store.objects, kept, b"y" * 100)
    found = maintenance.verify(store)
    assert [(p["digest"], p["problem"]) for p in found["problems"]] == [(kept, "corrupt")]
    assert {r["what"] for r in found["problems"][0]["refs"]} == {"output df", "executed notebook"}
    repaired = maintenance.verify(store, repair=True)
    assert repaired["marked_unusable"][0]["run"] == run_id
    assert store.objects.check(kept) == "missing"
    assert store.find_cached("k1") == []
    again = maintenance.verify(store)
    assert [(p["digest"], p["problem"]) for p in again["problems"]] == [(kept, "missing")]


def test_gc_removes_unreferenced_objects_and_old_runs(store, tmp_path):
    run_id, kept, loose = _store_with_outputs(store, tmp_path)
    young = maintenance.gc(store)
    assert young["objects_removed"] == []  # within the grace period
    dry = maintenance.gc(store, grace_s=0, dry_run=True)
    assert dry["objects_removed"] == [loose] and store.objects.check(loose) is None
    done = maintenance.gc(store, grace_s=0)
    assert done["objects_removed"] == [loose] and done["runs_removed"] == []
    assert store.objects.check(loose) == "missing" and store.objects.check(kept) is None
    store.update_run(run_id, started_at=time.time() - 10 * 86400)
    newer = _run(store, status="succeeded")
    policy = maintenance.gc(store, older_than_s=86400, grace_s=0)
    assert policy["runs_removed"] == [run_id] and policy["objects_removed"] == [kept]
    assert [r["id"] for r in store.list_runs()] == [newer]


def test_info_counts_runs_stages_and_objects(store, tmp_path):
    _store_with_outputs(store, tmp_path)
    info = maintenance.info(store)
    assert info["kind"] == ("postgresql" if store.is_database else "sqlite")
    assert info["schema_version"] == int(HEAD)
    assert (info["runs"], info["stages"], info["objects"], info["object_bytes"]) == (1, 1, 2, 160)
    assert ADMIN_PASSWORD not in json.dumps(info)


# -- migrations --------------------------------------------------------------------


def test_a_fresh_store_migrates_to_head_once(store_backend, tmp_path):
    first = open_store(store_backend.store, tmp_path / "nb.ipynb", objects=store_backend.objects)
    assert first.migrated_from == "empty" and first.db.revision() == HEAD
    again = open_store(store_backend.store, tmp_path / "nb.ipynb", objects=store_backend.objects)
    assert again.migrated_from is None


def test_a_store_at_a_newer_layout_is_refused(store):
    _stamp(store, "9999")
    with pytest.raises(StoreError) as err:
        RunStore(store.db.url if store.is_database else store.root, objects=store.objects.location if store.is_database else None)
    assert "newer than this nbops" in err.value.message and "9999" in err.value.message
    assert "pip install -U nbops" in err.value.fix
    assert ADMIN_PASSWORD not in err.value.message + err.value.fix


_OPEN = """
import sys, time
while time.time() < float(sys.argv[2]):
    time.sleep(0.005)
from nbops.store import RunStore
print(RunStore(sys.argv[1]).migrated_from)
"""


def test_two_processes_opening_a_fresh_postgres_migrate_it_once(postgres):
    url = postgres.new_database()
    import nbops.store  # noqa: F401  (warm the import cache so both start near the same instant)

    start_at = time.time() + 3
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _OPEN, url, str(start_at)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sorted(out.strip() for out, _ in outs) == ["None", "empty"], outs  # one migrated, the other found it done
    store = RunStore(url)
    with store.db.read() as c:
        assert c.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
        assert c.execute(sa.text("SELECT count(*) FROM runs")).scalar_one() == 0


# -- settings ----------------------------------------------------------------------


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """project/analysis/deep/nb.ipynb, with no NBOPS_* in the environment."""
    for key in ("NBOPS_STORE", "NBOPS_OBJECTS"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "project" / "analysis" / "deep").mkdir(parents=True)
    return tmp_path / "project"


def test_nbops_toml_found_upward_with_paths_relative_to_it(project):
    (project / "nbops.toml").write_text('store = "team-store"\nobjects = "blobs"\nworkspace = "ws"\n')
    settings = resolve_settings(None, project / "analysis" / "deep" / "nb.ipynb")
    assert settings.store == str((project / "team-store").resolve())
    assert settings.objects == str((project / "blobs").resolve())
    assert settings.workspace == (project / "ws").resolve()
    assert settings.source == str(project / "nbops.toml")


def test_pyproject_tool_nbops_found_upward_urls_kept(project):
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.nbops]\nstore = "postgresql://u:pw@db/nbops"\nobjects = "s3://bucket/objects"\n')
    settings = resolve_settings(None, project / "analysis" / "deep" / "nb.ipynb")
    assert settings.store == "postgresql://u:pw@db/nbops" and settings.objects == "s3://bucket/objects"
    assert settings.is_database and settings.workspace == project / "analysis" / "deep" / ".nbops"
    assert "pw" not in settings.describe() and "u:***@db" in settings.describe()


def test_a_pyproject_without_tool_nbops_is_passed_over(project):
    (project / "nbops.toml").write_text('store = "outer"\n')
    (project / "analysis" / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert resolve_settings(None, project / "analysis" / "deep" / "nb.ipynb").store == str((project / "outer").resolve())


def test_env_over_file_and_flag_over_env(project, monkeypatch):
    (project / "nbops.toml").write_text('store = "from-file"\nobjects = "file-objects"\n')
    nb = project / "analysis" / "deep" / "nb.ipynb"
    monkeypatch.setenv("NBOPS_STORE", "/env/store")
    settings = resolve_settings(None, nb)
    assert (settings.store, settings.source) == ("/env/store", "NBOPS_STORE")
    assert settings.objects == str((project / "file-objects").resolve())  # each setting from the first place that has it
    monkeypatch.setenv("NBOPS_OBJECTS", "s3://env/objects")
    assert resolve_settings(None, nb).objects == "s3://env/objects"
    flagged = resolve_settings("/flag/store", nb, "s3://flag/objects")
    assert (flagged.store, flagged.source, flagged.objects) == ("/flag/store", "--store", "s3://flag/objects")


def test_no_config_means_nbops_beside_the_notebook(project):
    settings = resolve_settings(None, project / "analysis" / "deep" / "nb.ipynb")
    assert settings.store == str(project / "analysis" / "deep" / ".nbops") and settings.source == "default" and settings.objects is None


@pytest.mark.parametrize("name", ["nbops.toml", "pyproject.toml"])
def test_unknown_keys_are_refused_naming_the_file(project, name):
    body = 'stroe = "typo"\n' if name == "nbops.toml" else '[tool.nbops]\nstore = "x"\nbucket = "b"\n'
    (project / name).write_text(body)
    with pytest.raises(UsageError) as err:
        resolve_settings(None, project / "analysis" / "deep" / "nb.ipynb")
    assert str(project / name) in err.value.message
    assert ("stroe" if name == "nbops.toml" else "bucket") in err.value.message


def test_broken_toml_names_the_file(project):
    (project / "nbops.toml").write_text("store = \n")
    with pytest.raises(UsageError) as err:
        resolve_settings(None, project / "analysis" / "deep" / "nb.ipynb")
    assert str(project / "nbops.toml") in err.value.message


# -- credentials -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, masked",
    [
        ("postgresql://alice:s3cret@db:5432/x", "postgresql://alice:***@db:5432/x"),
        ("postgresql+psycopg://alice:p%40ss@db/x", "postgresql+psycopg://alice:***@db/x"),
        ("s3://KEY:SECRET@bucket/prefix", "s3://KEY:***@bucket/prefix"),
        ("postgresql://alice@db/x", "postgresql://alice@db/x"),
        ("/plain/folder", "/plain/folder"),
        # an address in the query is not a password (a notification target)
        ("smtps://mail.x.org:465?to=a@x.org", "smtps://mail.x.org:465?to=a@x.org"),
        ("smtp://bob:pw@mail.x.org:587?to=a@x.org", "smtp://bob:***@mail.x.org:587?to=a@x.org"),
    ],
)
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_the_password_never_shows_in_location_or_errors(store_backend, postgres, tmp_path):
    if store_backend.store is None:
        pytest.skip("the embedded store has no password")
    store = open_store(store_backend.store, tmp_path / "nb.ipynb", objects=store_backend.objects)
    assert ADMIN_PASSWORD in store_backend.store
    assert ADMIN_PASSWORD not in store.location + json.dumps(store.describe())
    wrong_password = postgres.url_with(store_backend.store, "nbops", "wrong-pa55word")
    missing_db = postgres.url_with("no_such_db", "nbops", ADMIN_PASSWORD)
    for url, cause in ((wrong_password, "refused the credentials"), (missing_db, "does not exist")):
        with pytest.raises(StoreError) as err:
            RunStore(url)
        text = err.value.message + (err.value.fix or "")
        assert cause in text, text
        assert ADMIN_PASSWORD not in text and "wrong-pa55word" not in text
