"""Objects named by sha256 or BLAKE3 side by side: layout, verification with each digest's own
algorithm, damaged objects refused, old stores unchanged, concurrent puts of one digest."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from nbops.errors import CorruptObjectError
from nbops.runtime.files import BLAKE3, SHA256, digest_file
from nbops.store import RunStore, maintenance
from nbops.store.objects import ObjectStore, digest_of_key, object_key

blake3 = pytest.importorskip("blake3")


def source(tmp: Path, data: bytes, name: str = "src.bin") -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def flip_a_byte(path: Path) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_each_algorithm_has_its_place_and_both_are_listed(tmp_path, monkeypatch):
    objects = ObjectStore(tmp_path / "objects")
    data = b"the same bytes" * 1000
    sha = objects.put_file(source(tmp_path, data, "a"))  # NBOPS_HASH unset: sha256, as every store so far
    monkeypatch.setenv("NBOPS_HASH", "blake3")
    b3 = objects.put_file(source(tmp_path, data, "b"))
    assert sha == hashlib.sha256(data).hexdigest() and b3 == "b3-" + blake3.blake3(data).hexdigest()
    assert objects.path(sha) == tmp_path / "objects" / sha[:2] / sha[2:]
    assert objects.path(b3) == tmp_path / "objects" / "blake3" / b3[3:5] / b3[5:]
    assert dict(objects.digests()) == {sha: len(data), b3: len(data)}
    assert objects.verify(sha) and objects.verify(b3)
    assert digest_of_key(object_key(b3)) == b3 and digest_of_key(object_key(sha)) == sha
    assert digest_of_key("tmp/" + uuid.uuid4().hex) is None and digest_of_key("blake3/zz/" + "0" * 62) is None


@pytest.mark.parametrize("bad", ["../../etc/passwd", "b3-../" + "0" * 61, "B3-" + "0" * 64])
def test_paths_only_for_digests(tmp_path, bad):
    with pytest.raises(ValueError, match="not a sha256 digest"):
        ObjectStore(tmp_path).path(bad)


@pytest.mark.parametrize("algorithm", [SHA256, BLAKE3])
def test_a_damaged_object_is_refused(tmp_path, monkeypatch, algorithm):
    monkeypatch.setenv("NBOPS_HASH", algorithm)
    objects = ObjectStore(tmp_path / "objects")
    data = bytes(range(256)) * 50_000  # 12.8 MB: BLAKE3 verifies it memory-mapped, on every core
    digest = objects.put_file(source(tmp_path, data))
    flip_a_byte(objects.path(digest))
    assert objects.check(digest, len(data)) is None  # same size: only the re-hash can tell
    assert not objects.verify(digest)
    objects.path(digest).write_bytes(data[:-1])
    with pytest.raises(CorruptObjectError, match="truncated"):
        objects.materialize(digest, tmp_path / "out", size=len(data))


def test_a_store_written_before_blake3_reads_and_verifies_unchanged(tmp_path, monkeypatch):
    """Objects laid out by earlier nbops (bare sha256 names) under a BLAKE3 default."""
    root = tmp_path / "objects"
    digests = {}
    for i in range(3):
        data = f"old object {i}".encode() * 100
        digest = hashlib.sha256(data).hexdigest()
        (root / digest[:2]).mkdir(parents=True, exist_ok=True)
        (root / digest[:2] / digest[2:]).write_bytes(data)
        digests[digest] = len(data)
    monkeypatch.setenv("NBOPS_HASH", "blake3")
    objects = ObjectStore(root)
    assert dict(objects.digests()) == digests
    assert all(objects.verify(d) for d in digests)
    first = next(iter(digests))
    objects.materialize(first, tmp_path / "copy", size=digests[first])
    assert hashlib.sha256((tmp_path / "copy").read_bytes()).hexdigest() == first
    # The same bytes stored again under the new default get a BLAKE3 name: no collision, both verify.
    again = objects.put_file(tmp_path / "copy")
    assert again.startswith("b3-") and again != first and objects.verify(again) and objects.verify(first)


PUT = """
import sys
from pathlib import Path
from nbops.store.objects import ObjectStore
src, root, digest = sys.argv[1:4]
sys.stdin.readline()  # start together
print(ObjectStore(Path(root)).put_file(src, move=True, digest=digest or None))
"""


@pytest.mark.parametrize("algorithm", [SHA256, BLAKE3])
def test_concurrent_puts_of_one_digest_leave_one_whole_object(tmp_path, algorithm):
    data = bytes(range(256)) * 20_000
    digest = digest_file(source(tmp_path, data, "ref"), algorithm)
    root = tmp_path / "objects"
    procs = []
    for i in range(6):
        src = source(tmp_path, data, f"src{i}")
        given = digest if i % 2 else ""  # half computed it while writing, half let the store hash
        env = {"NBOPS_HASH": algorithm, "PATH": "/usr/bin:/bin"}
        procs.append(
            subprocess.Popen([sys.executable, "-c", PUT, str(src), str(root), given], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        )
    outs = [p.communicate("go\n", timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs) and outs == [digest] * 6
    objects = ObjectStore(root)
    assert dict(objects.digests()) == {digest: len(data)} and objects.verify(digest)
    assert not any((root / "tmp").iterdir())  # no half-written object left behind


def test_fsspec_objects_name_and_verify_both(tmp_path, monkeypatch):
    from nbops.store.remote_objects import FsspecObjects

    objects = FsspecObjects(f"memory://nbops-test-{uuid.uuid4().hex}/objects")
    data = b"remote bytes" * 5000
    sha = objects.put_file(source(tmp_path, data))
    monkeypatch.setenv("NBOPS_HASH", "blake3")
    b3 = objects.put_file(source(tmp_path, data, "again"))
    assert b3.startswith("b3-") and objects.key(b3).endswith(f"/objects/blake3/{b3[3:5]}/{b3[5:]}")
    assert dict(objects.digests()) == {sha: len(data), b3: len(data)}
    assert objects.verify(sha) and objects.verify(b3)
    objects.materialize(b3, tmp_path / "down", size=len(data))
    assert (tmp_path / "down").read_bytes() == data
    objects.fs.pipe_file(objects.key(b3), data[:-1] + b"?")  # same size, other bytes
    assert not objects.verify(b3)
    with pytest.raises(CorruptObjectError, match="damaged"):
        objects.materialize(b3, tmp_path / "down2", size=len(data))


# -- real runs ---------------------------------------------------------------------------
def two_stages(folder: Path, use: str = "total = float(df['x'].sum())") -> Path:
    cells = [
        ("n = 1000", ["parameters"]),
        ("import pandas as pd\ndf = pd.DataFrame({'x': range(n), 'c': pd.Categorical(['a', 'b'] * (n // 2))})", ["stage:make"]),
        (use, ["stage:use"]),
    ]
    nb = {
        "cells": [
            {"cell_type": "code", "id": f"c{i}", "metadata": {"tags": t}, "source": s, "outputs": [], "execution_count": None} for i, (s, t) in enumerate(cells)
        ],
        "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = folder / "two.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_runs_under_blake3_reuse_sha256_outputs_and_recompute_a_damaged_one(tmp_path, monkeypatch):
    from nbops import api

    nb = two_stages(tmp_path)
    first = api.run(nb)  # the default: sha256, as a store made before BLAKE3
    assert first["status"] == "succeeded"
    sha = first["stages"][0]["outputs"]["df"]["sha256"]
    assert len(sha) == 64

    monkeypatch.setenv("NBOPS_HASH", "blake3")
    nb = two_stages(tmp_path, "total = float(df['x'].sum()) + 1")  # only `use` changed
    second = api.run(nb)
    statuses = {s["name"]: s["status"] for s in second["stages"]}
    assert statuses == {"make": "cached", "use": "succeeded"}  # the sha256 output is reused as it is
    assert second["stages"][0]["outputs"]["df"]["sha256"] == sha
    assert second["stages"][1]["notebook_sha256"].startswith("b3-")  # new objects: BLAKE3
    rs = RunStore(tmp_path / ".nbops", create=False)
    assert maintenance.verify(rs)["problems"] == []

    nb = two_stages(tmp_path, "total = float(df['x'].sum()) + 2")
    monkeypatch.setenv("NBOPS_HASH", "blake3")
    rs.objects.delete(sha)  # gone: make must run again, and now writes a BLAKE3 object
    third = api.run(nb)
    make = third["stages"][0]
    assert make["status"] == "succeeded" and make["outputs"]["df"]["sha256"].startswith("b3-")
    b3 = make["outputs"]["df"]["sha256"]
    assert rs.objects.verify(b3)

    flip_a_byte(rs.objects.path(b3))  # a damaged BLAKE3 object is refused on read: make is recomputed
    nb = two_stages(tmp_path, "total = float(df['x'].sum()) + 3")
    fourth = api.run(nb)
    assert {s["name"]: s["status"] for s in fourth["stages"]} == {"make": "succeeded", "use": "succeeded"}
    assert fourth["stages"][1]["scalars"]["total"] == sum(range(1000)) + 3
    problems = maintenance.verify(rs)["problems"]
    assert rs.objects.verify(b3) and [(p["digest"], p["problem"]) for p in problems] == [(sha, "missing")]  # the one deleted above
