"""``nbops store copy``: runs and their objects from one store to another (a laptop's runs published to the team store)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from nbops.store import RunStore
from nbops.store.maintenance import references
from tests.conftest import build_notebook, run_cli
from tests.services import postgres, s3  # noqa: F401


@pytest.fixture(scope="module")
def laptop(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """A notebook and an embedded store holding two real runs of it (older first); never changed by the tests."""
    folder = tmp_path_factory.mktemp("laptop")
    nb = build_notebook(folder, [("n = 3", ["parameters"]), ("x = list(range(n))", ["stage:make"]), ("total = sum(x)", ["stage:count"])], "pub.ipynb")
    ids = []
    for n in (3, 4):
        done = run_cli("run", str(nb), "-p", f"n={n}", "--json", cwd=folder, env={"NBOPS_USER": "alice"})
        assert done.returncode == 0, done.stderr
        ids.append(json.loads(done.stdout)["id"])
    return nb, folder / ".nbops", ids


@pytest.fixture(params=["sqlite", "pg-s3"])
def destination(request, tmp_path) -> tuple[str, list[str], dict[str, str]]:
    """(DST, the CLI flags that name its objects for 'store copy', the env that names the store for other commands)."""
    if request.param == "sqlite":
        dst = str(tmp_path / "team")
        return dst, [], {"NBOPS_STORE": dst}
    url = request.getfixturevalue("postgres").new_database()
    objects = request.getfixturevalue("s3").new_bucket() + "/objects"
    return url, ["--to-objects", objects], {"NBOPS_STORE": url, "NBOPS_OBJECTS": objects}


def _copy(src: Path | str, dst: str, *flags: str, cwd: Path) -> dict:
    proc = run_cli("store", "copy", str(src), dst, *flags, "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nbops-secret" not in proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _show(run_id: str, env: dict, cwd: Path) -> dict:
    proc = run_cli("runs", "show", run_id, "--json", cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_copy_publishes_runs_with_every_object_and_a_second_copy_copies_nothing(laptop, destination, tmp_path):
    nb, src, ids = laptop
    dst, flags, env = destination
    digests = references(RunStore(src, create=False), set(ids))
    expected_bytes = sum(os.path.getsize(RunStore(src, create=False).objects.path(d)) for d in digests)

    first = _copy(src, dst, *flags, cwd=tmp_path)
    assert first["runs_copied"] == ids and first["stages_copied"] == 4
    assert first["objects_copied"] == len(digests) >= 6 and first["bytes"] == expected_bytes  # per stage: an executed notebook and an output
    assert first["problems"] == [] and first["runs_present"] == []

    for run_id in ids:
        copied = _show(run_id, env, tmp_path)
        original = _show(run_id, {"NBOPS_STORE": str(src)}, tmp_path)
        assert copied.pop("store") != original.pop("store")
        assert copied == original  # the record as it was: stages, reasons, author, metrics
        assert copied["user"] == "alice"
    verified = run_cli("store", "verify", "--json", cwd=tmp_path, env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["problems"] == [] and report["objects"] == len(digests)

    again = run_cli("store", "copy", str(src), dst, *flags, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "nothing to copy" in again.stdout and "already there: 2 runs" in again.stdout
    assert "nbops-secret" not in again.stdout + again.stderr


def test_a_run_against_the_published_store_is_entirely_cached(laptop, postgres, s3, tmp_path):  # noqa: F811
    """Another user, another checkout of the notebook: the cache keys are content only."""
    nb, src, ids = laptop
    url, objects = postgres.new_database(), s3.new_bucket() + "/objects"
    _copy(src, url, "--to-objects", objects, "--runs", "latest", cwd=tmp_path)
    checkout = tmp_path / "bob" / "project"
    checkout.mkdir(parents=True)
    shutil.copy(nb, checkout / nb.name)
    done = run_cli("run", str(checkout / nb.name), "-p", "n=4", "--store", url, "--objects", objects, "--json", cwd=checkout, env={"NBOPS_USER": "bob"})
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert [(s["name"], s["status"], s["cached_from"]) for s in run["stages"]] == [("make", "cached", ids[1]), ("count", "cached", ids[1])]
    assert run["user"] == "bob"


def test_runs_by_latest_and_only_what_is_missing(laptop, tmp_path):
    nb, src, ids = laptop
    dst = str(tmp_path / "team")
    older = _copy(src, dst, "--runs", "latest~1", cwd=tmp_path)
    assert older["runs_copied"] == [ids[0]]
    both = _copy(src, dst, "--runs", "latest", ids[0], cwd=tmp_path)
    assert both["runs_copied"] == [ids[1]] and both["runs_present"] == [ids[0]]
    assert older["objects_copied"] + both["objects_copied"] == len(references(RunStore(src), None))
    missing = run_cli("store", "copy", str(src), dst, "--runs", "20200101-000000-abcdef", cwd=tmp_path)
    assert missing.returncode == 2 and "no run 20200101-000000-abcdef" in missing.stderr
    nothing = run_cli("store", "copy", str(tmp_path / "no-such-store"), dst, cwd=tmp_path)
    assert nothing.returncode == 2 and "no runs yet" in nothing.stderr and not (tmp_path / "no-such-store").exists()


@pytest.mark.parametrize("damage", ["missing", "flipped"])
def test_a_run_whose_object_is_damaged_is_not_copied_and_no_record_points_at_a_missing_object(laptop, tmp_path, damage):
    nb, clean, ids = laptop
    src = tmp_path / "src"
    shutil.copytree(clean, src, symlinks=True)
    store = RunStore(src)
    newest = store.get_run(ids[1])
    digest = newest["stages"][0]["outputs"]["x"]["sha256"]
    obj = store.objects.path(digest)
    if damage == "missing":
        obj.unlink()
    else:
        os.chmod(obj, stat.S_IRUSR | stat.S_IWUSR)
        data = bytearray(obj.read_bytes())
        data[-3] ^= 0xFF  # the same size: only the hash tells
        obj.write_bytes(bytes(data))
    dst = tmp_path / "team"
    proc = run_cli("store", "copy", str(src), str(dst), "--json", cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["runs_copied"] == [ids[0]]
    assert [(p["run"], p["digest"]) for p in result["problems"]] == [(ids[1], digest)]
    assert "nbops store verify --store" in proc.stderr
    copied = RunStore(dst)
    assert [r["id"] for r in copied.run_rows()] == [ids[0]]
    assert copied.objects.check(digest) == "missing"  # the damaged bytes never entered under the good name
    verified = run_cli("store", "verify", "--store", str(dst), cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
