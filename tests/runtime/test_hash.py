"""Digests that name their algorithm, hashed while written: one pass, no deferred copy."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from nbops.errors import UsageError
from nbops.runtime.files import BLAKE3, SHA256, algorithm_of, digest_file, digest_matches, hash_algorithm, new_hasher
from nbops.runtime.marshal import _HashingWriter, save_value_hashed

blake3 = pytest.importorskip("blake3")

DATA = bytes(range(256)) * 40_000  # 10 MB: above the parallel threshold and the BLAKE3 mmap threshold


def test_digest_names_its_algorithm(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(DATA)
    sha = digest_file(path, SHA256)
    b3 = digest_file(path, BLAKE3)
    assert sha == hashlib.sha256(DATA).hexdigest() and algorithm_of(sha) == SHA256
    assert b3 == "b3-" + blake3.blake3(DATA).hexdigest() and algorithm_of(b3) == BLAKE3
    assert digest_matches(path, sha) and digest_matches(path, b3)
    small = tmp_path / "small.bin"
    small.write_bytes(b"abc")  # below the mmap threshold: hashed from one read
    assert digest_file(small, BLAKE3) == "b3-" + blake3.blake3(b"abc").hexdigest()
    # A sha256 digest is never compared with a BLAKE3 hash (nor the reverse): each is checked with its own.
    assert not digest_matches(path, "b3-" + sha) and not digest_matches(path, b3.removeprefix("b3-"))


@pytest.mark.parametrize("bad", ["", "../../etc/passwd", "A" * 64, "b3-" + "a" * 63, "b3:" + "a" * 64, "sha256-" + "a" * 64, "a" * 65])
def test_anything_but_a_digest_is_refused(bad):
    with pytest.raises(ValueError, match="not a sha256 digest"):
        algorithm_of(bad)


def test_algorithm_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("NBOPS_HASH", raising=False)
    assert hash_algorithm() == SHA256  # every store written so far: the default until the lead flips it
    monkeypatch.setenv("NBOPS_HASH", "BLAKE3")
    assert hash_algorithm() == BLAKE3 and new_hasher().algorithm == BLAKE3
    monkeypatch.setenv("NBOPS_HASH", "md5")
    with pytest.raises(UsageError, match="NBOPS_HASH"):
        hash_algorithm()


def test_a_blake3_digest_without_the_package_says_what_to_install(monkeypatch, tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"x")
    monkeypatch.setitem(__import__("sys").modules, "blake3", None)
    with pytest.raises(Exception, match="blake3") as info:
        digest_matches(path, "b3-" + "0" * 64)
    assert type(info.value).__name__ == "MissingExtraError"
    assert digest_matches(path, hashlib.sha256(b"x").hexdigest())  # sha256 stores need nothing more


@pytest.mark.parametrize("algorithm", [SHA256, BLAKE3])
def test_hashing_writer_hashes_what_it_wrote_without_keeping_buffers(tmp_path, algorithm):
    """The caller reuses its buffer as soon as write returns (Arrow and numpy do): the
    digest must be of the bytes as written, so each write is hashed before it returns."""
    path = tmp_path / "out.bin"
    buffer = bytearray(3 << 20)  # above PARALLEL_MIN: hashed in the second thread, during the write
    with open(path, "wb") as f:
        writer = _HashingWriter(f, algorithm)
        for i in range(5):
            buffer[:] = bytes([i]) * len(buffer)
            writer.write(buffer)
            writer.write(memoryview(b"small piece %d" % i))  # hashed inline
        writer.write(np.arange(12, dtype=np.int64).reshape(3, 4)[:, ::2])  # not contiguous: copied once, in order
        digest = writer.hexdigest()
    assert writer.size == path.stat().st_size
    assert digest == digest_file(path, algorithm)


@pytest.mark.parametrize("algorithm", [SHA256, BLAKE3])
def test_saved_artifacts_carry_the_digest_of_their_file(tmp_path, monkeypatch, algorithm):
    monkeypatch.setenv("NBOPS_HASH", algorithm)
    frame = pd.DataFrame({"a": np.arange(300_000, dtype=np.float64), "s": pd.array([f"r{i % 97}" for i in range(300_000)], dtype="str")})
    for value in (frame, np.arange(1_000_000)):
        path, _, digest = save_value_hashed(tmp_path, "v", value)
        assert algorithm_of(digest) == algorithm and digest == digest_file(path, algorithm)
