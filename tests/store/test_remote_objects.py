"""FsspecObjects against a real S3-compatible server (moto over HTTP on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from nbops.errors import CorruptObjectError, StoreError
from nbops.runtime.files import sha256_file
from nbops.store.objects import open_objects
from nbops.store.remote_objects import FsspecObjects
from tests.services import s3  # noqa: F401

MiB = 2**20


@pytest.fixture
def objects(s3) -> FsspecObjects:  # noqa: F811
    return FsspecObjects(s3.new_bucket() + "/objects")


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def raw(objects: FsspecObjects):
    """The bucket through s3fs itself, as another program (or a vandal) sees it."""
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True)


def test_open_objects_picks_fsspec_for_s3_without_network_or_credentials():
    objects = open_objects("s3://alice:hunter2@bucket/team/objects", "/unused")
    assert isinstance(objects, FsspecObjects)
    assert objects.location == "s3://bucket/team/objects"
    assert objects.shared is True
    assert "hunter2" not in repr(objects)
    with pytest.raises(ValueError, match="not a sha256 digest"):
        objects.check("../../etc/passwd")


def test_round_trip(objects, tmp_path):
    src = write(tmp_path / "a.bin", b"hello objects" * 1000)
    digest = objects.put_file(src, move=True)
    assert digest == sha256_file(src)
    assert src.exists()  # move: the source is left to the caller
    assert objects.check(digest) is None
    assert objects.check(digest, 13000) is None
    assert objects.check(digest, 13001) == "truncated"
    assert objects.check(digest, 12999) == "wrong size"
    assert objects.check("0" * 64) == "missing"
    assert objects.verify(digest)
    assert not objects.verify("0" * 64)
    assert raw(objects).cat_file(objects.key(digest)) == src.read_bytes()
    assert objects.key(digest).endswith(f"/objects/{digest[:2]}/{digest[2:]}")

    dest = tmp_path / "out" / "a.bin"
    objects.materialize(digest, dest, size=13000)
    assert dest.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["a.bin"]

    other = objects.put_file(write(tmp_path / "b.bin", b"other"))
    assert sorted(objects.digests()) == sorted([(digest, 13000), (other, 5)])
    objects.delete(digest)
    objects.delete(digest)  # deleting twice is fine
    assert objects.check(digest) == "missing"
    assert list(objects.digests()) == [(other, 5)]
    with pytest.raises(CorruptObjectError, match="missing"):
        objects.materialize(digest, dest)
    assert dest.read_bytes() == src.read_bytes()  # untouched


def test_put_is_skipped_when_the_object_is_there_and_repairs_a_wrong_size(objects, tmp_path):
    src = write(tmp_path / "a.bin", b"x" * 1000)
    digest = objects.put_file(src)
    fs = raw(objects)
    modified = fs.info(objects.key(digest))["LastModified"]
    time.sleep(1.1)  # S3 timestamps have one-second resolution
    assert objects.put_file(src, digest=digest) == digest
    assert fs.info(objects.key(digest))["LastModified"] == modified  # not written again
    fs.pipe_file(objects.key(digest), b"x" * 10)
    assert objects.check(digest, 1000) == "truncated"
    objects.put_file(src)
    assert objects.verify(digest)


def test_corrupt_object_raises_and_leaves_dest_untouched(objects, tmp_path):
    src = write(tmp_path / "a.bin", b"a" * 5000)
    digest = objects.put_file(src)
    raw(objects).pipe_file(objects.key(digest), b"b" * 5000)  # same size: only a re-hash sees it
    assert objects.check(digest, 5000) is None
    assert not objects.verify(digest)
    dest = write(tmp_path / "dest.bin", b"previous")
    with pytest.raises(CorruptObjectError) as info:
        objects.materialize(digest, dest, size=5000)
    assert "no longer hash" in str(info.value) and objects.url(digest) in str(info.value)
    assert info.value.digest == digest
    assert dest.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "dest.bin"]

    raw(objects).pipe_file(objects.key(digest), b"a" * 10)
    with pytest.raises(CorruptObjectError, match="truncated"):
        objects.materialize(digest, dest, size=5000)
    assert dest.read_bytes() == b"previous"


def test_two_writers_of_one_object_leave_one_valid_object(s3, tmp_path):  # noqa: F811
    url = s3.new_bucket() + "/objects"
    src = write(tmp_path / "big.bin", os.urandom(40 * MiB))  # multipart: both uploads overlap
    results, errors = [], []
    start = threading.Barrier(2)

    def writer():
        try:
            store = FsspecObjects(url)
            start.wait()
            results.append(store.put_file(src))
        except Exception as exc:  # pragma: no cover - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    digest = sha256_file(src)
    assert results == [digest, digest]
    objects = FsspecObjects(url)
    assert list(objects.digests()) == [(digest, 40 * MiB)]
    assert objects.verify(digest)
    assert raw(objects).find(url.removeprefix("s3://")) == [objects.key(digest)]  # no temporary keys left


CHILD = textwrap.dedent(
    """
    import json, os, resource, sys
    from nbops.store.remote_objects import FsspecObjects

    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    step, url, src, small, dest = sys.argv[1:]
    objects = FsspecObjects(url)
    d = objects.put_file(small)  # every code path loaded before the baseline
    objects.materialize(d, dest + ".small")
    objects.verify(d)
    base = peak()
    if step == "put":
        result = objects.put_file(src)
    elif step == "get":
        result = objects.materialize(objects.put_file(src), dest)  # the object is there: put only checks
    else:
        result = objects.verify(objects.put_file(src))
    print(json.dumps({"result": result, "growth": peak() - base}))
    """
)


def test_a_200_mb_object_streams_in_parts_with_bounded_memory(objects, tmp_path):
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(25):
            f.write(os.urandom(8 * MiB))
    small = write(tmp_path / "small.bin", os.urandom(3 * MiB))
    dest = tmp_path / "dest.bin"
    digest = sha256_file(src)
    results = {}
    # Child processes: each peak RSS is the client's alone (moto runs in this process).
    for step in ("put", "get", "verify"):
        argv = [sys.executable, "-c", CHILD, step, objects.location, str(src), str(small), str(dest)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        # About 2 x part_size x max_concurrency in flight (64 MiB), never the 200 MiB object.
        assert out["growth"] < 100 * MiB, (step, out["growth"] / MiB)
        results[step] = out["result"]
    assert results == {"put": digest, "get": None, "verify": True}
    assert sha256_file(dest) == digest
    etag = raw(objects).info(objects.key(digest))["ETag"]
    assert etag.strip('"').endswith(f"-{-(-200 * MiB // FsspecObjects.part_size)}")  # multipart, in part_size parts


def test_stopped_server_fails_fast_naming_the_url(s3, tmp_path):  # noqa: F811
    url = s3.new_bucket() + "/objects"
    src = write(tmp_path / "a.bin", b"data")
    with s3.stopped():
        for call in (FsspecObjects(url).probe, lambda: FsspecObjects(url).put_file(src), lambda: FsspecObjects(url).check("0" * 64)):
            began = time.monotonic()
            with pytest.raises(StoreError) as info:
                call()
            assert time.monotonic() - began < 10
            assert f"cannot reach the object store {url}" in info.value.message
            assert s3.endpoint in info.value.message
            assert "server is running" in info.value.fix


def test_missing_bucket_says_how_to_create_it(s3, tmp_path):  # noqa: F811
    objects = FsspecObjects("s3://no-such-bucket-nbops/objects")
    for call in (objects.probe, lambda: objects.put_file(write(tmp_path / "a.bin", b"data")), lambda: list(objects.digests())):
        with pytest.raises(StoreError) as info:
            call()
        assert "the bucket no-such-bucket-nbops of s3://no-such-bucket-nbops/objects does not exist" in info.value.message
        assert "aws s3 mb s3://no-such-bucket-nbops" in info.value.fix and "AWS_ENDPOINT_URL" in info.value.fix


def test_wrong_credentials_say_which_settings_to_check(s3, tmp_path):  # noqa: F811
    url = s3.new_bucket() + "/objects"
    src = write(tmp_path / "a.bin", b"data")
    with s3.credentials_checked() as (key_id, secret):
        good = FsspecObjects(url, key=key_id, secret=secret)
        good.probe()
        digest = good.put_file(src)
        assert good.verify(digest)
        cases = {"InvalidAccessKeyId": ("AKIAUNKNOWN000000000", secret), "SignatureDoesNotMatch": (key_id, "not-the-secret")}
        for code, (k, s) in cases.items():
            bad = FsspecObjects(url, key=k, secret=s)
            with pytest.raises(StoreError) as info:
                bad.probe()
            assert f"{url}: the credentials were refused ({code})" in info.value.message
            assert "AWS_ACCESS_KEY_ID" in info.value.fix and "AWS_PROFILE" in info.value.fix
            assert s not in str(info.value)
            for method, arg in ((bad.check, digest), (bad.put_file, src), (bad.verify, digest)):
                with pytest.raises(StoreError, match="credentials were refused"):
                    method(arg)


def test_missing_package_says_what_to_install():
    objects = FsspecObjects("gs://bucket/objects")  # gcsfs is not a dependency
    with pytest.raises(StoreError) as info:
        objects.probe()
    assert "gs://bucket/objects needs the 'gcsfs' package" in info.value.message
    assert info.value.fix == "pip install gcsfs"


def test_a_protocol_without_atomic_put_writes_a_temporary_key_then_renames(tmp_path):
    objects = FsspecObjects((tmp_path / "objects").as_uri())
    src = write(tmp_path / "a.bin", b"local")
    digest = objects.put_file(src)
    assert objects.verify(digest)
    assert list(objects.digests()) == [(digest, 5)]
    assert list((tmp_path / "objects" / "tmp").iterdir()) == []
    objects.materialize(digest, tmp_path / "out.bin", 5)
    assert (tmp_path / "out.bin").read_bytes() == b"local"
