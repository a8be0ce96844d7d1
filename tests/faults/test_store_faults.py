"""Store faults done for real (a damaged runs.db, a full disk, a read-only objects folder):
each is a clear error with the fix for its cause and exit code 3, never an internal error."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from nbops import api
from nbops.errors import StoreError
from nbops.store import RunStore

from ..conftest import build_notebook, run_cli


def _notebook(folder: Path) -> Path:
    return build_notebook(folder, [("x = list(range(1000))", ["stage:make"]), ("n = len(x)", ["stage:count"])], "faults.ipynb")


def _mount(kind: str, target: Path, *options: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", *options, kind, str(target)] if kind == "tmpfs" else ["mount", *options, str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this machine does not allow mounting here ({done.stderr.strip()}): needs root")


@pytest.fixture
def mounts():
    made: list[Path] = []
    yield made
    for path in reversed(made):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_damaged_runs_db_is_a_clear_error_with_the_recovery(tmp_path: Path):
    nb = _notebook(tmp_path)
    api.run(nb)
    db = tmp_path / ".nbops" / "runs.db"
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    data[4096:] = b"\xde\xad\xbe\xef" * ((len(data) - 4096) // 4)  # every page after the first
    db.write_bytes(bytes(data))
    for args in (["runs", "ls", "--notebook", str(nb)], ["run", str(nb)]):
        done = run_cli(*args, cwd=tmp_path)
        assert done.returncode == 3, (args, done.stdout, done.stderr)
        assert "is damaged" in done.stderr and "nbops store verify" in done.stderr and ".recover" in done.stderr
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr


def test_a_full_disk_names_the_disk_not_the_rollback(tmp_path: Path, mounts):
    disk = tmp_path / "small"
    _mount("tmpfs", disk, "-t", "tmpfs", "-o", "size=1m")
    mounts.append(disk)
    store = RunStore(disk / ".nbops")
    store.create_run("20261130-000000-aaaaaa", notebook="x.ipynb", params={})
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass  # the disk is full now
    with pytest.raises(StoreError) as err:
        for i in range(200):  # until SQLite needs a new page
            store.put_stage("20261130-000000-aaaaaa", f"s{i}", i, status="pending", outputs={"v": {"blob": "x" * 2000}})
    assert "is full" in err.value.message and "rollback" not in err.value.message.lower()
    assert err.value.exit_code == 3
    source = tmp_path / "object.bin"
    source.write_bytes(b"y" * 100_000)
    with pytest.raises(StoreError, match="is full"):
        store.objects.put_file(source)


def test_a_read_only_objects_folder_is_a_clear_error(tmp_path: Path, mounts):
    nb = _notebook(tmp_path)
    api.run(nb)
    objects = tmp_path / ".nbops" / "objects"
    _mount("bind", objects, "--bind", str(objects))
    mounts.append(objects)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(objects)], check=True)
    done = run_cli("run", str(nb), "--no-cache", cwd=tmp_path)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "cannot be written" in done.stderr and "permissions" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("make", ["folder", "latin1"])
def test_a_params_file_that_is_a_folder_or_not_utf8_is_a_clear_error(tmp_path: Path, make: str):
    nb = _notebook(tmp_path)
    target = tmp_path / "params.yaml"
    if make == "folder":
        target.mkdir()
    else:
        target.write_bytes("name: caf\xe9\n".encode("latin-1"))
    done = run_cli("run", str(nb), "-f", str(target), cwd=tmp_path)
    assert done.returncode == 2 and "parameters file" in done.stderr and "Traceback" not in done.stderr
    assert ("is a folder" if make == "folder" else "is not UTF-8") in done.stderr
