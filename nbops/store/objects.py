"""Content-addressed objects: every artifact and executed notebook, stored once.

``objects/ab/cdef...`` holds the bytes whose sha256 is ``abcdef...``, and
``objects/blake3/ab/cdef...`` those whose BLAKE3 digest is ``b3-abcdef...``
(``object_key``; a digest names its algorithm: ``nbops.runtime.files``). Files
enter by rename (same filesystem) or copy-then-rename, so a reader never sees
a half-written object, and are made read-only: an object is shared by hard
links into run folders and must never change under its name.

Two implementations share this interface (``open_objects`` picks one by URL):
``ObjectStore``, a folder (the embedded default, or ``file:///shared/path``
for a team), and ``remote_objects.FsspecObjects`` for ``s3://``, ``gs://``,
``az://`` and any other fsspec URL. Every method that a caller uses is here:

- ``location`` (str, shown to users, no credentials) and ``shared`` (True when
  Ray workers on other machines can reach the objects themselves);
- ``check(digest, size)`` the cheap check, ``verify(digest)`` the re-hash
  (with the digest's own algorithm);
- ``put_file(src, move=, digest=)`` stores once per digest, atomically (a file
  hashed while written, ``digest`` given, is not read again: a link and a rename);
- ``materialize(digest, dest, size)`` verified copy/link into ``dest``;
- ``probe()`` one cheap call that fails with the cause (unreachable, no bucket,
  credentials) before a run writes anything;
- ``delete(digest)``, ``digests()`` (every object and its size: gc, verify, copy),
  ``age_s(digest)`` (seconds since it was written: gc spares young objects).
"""

from __future__ import annotations

import os
import shutil
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from nbops.errors import CorruptObjectError
from nbops.runtime.files import BLAKE3, algorithm_of, digest_file, digest_matches, sha256_file
from nbops.store.faults import store_error

__all__ = ["ObjectStore", "open_objects", "sha256_file", "object_key", "digest_of_key"]

_B3_DIR = "blake3"  # not two characters: never taken for a sha256 prefix folder, and older nbops skips it


def object_key(digest: str) -> str:
    """An object's path under the objects' root: ``ab/cdef...`` (sha256) or
    ``blake3/ab/cdef...`` (``b3-abcdef...``); ValueError for anything but a digest."""
    algorithm = algorithm_of(digest)
    hexdigest = digest.rpartition("-")[2]
    key = f"{hexdigest[:2]}/{hexdigest[2:]}"
    return f"{_B3_DIR}/{key}" if algorithm == BLAKE3 else key


def digest_of_key(key: str) -> str | None:
    """The digest an object path (relative to the root) names, or None for anything else."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == _B3_DIR and len(parts[1]) == 2:
        digest = "b3-" + parts[1] + parts[2]
    elif len(parts) == 2 and len(parts[0]) == 2:
        digest = parts[0] + parts[1]
    else:
        return None
    try:
        algorithm_of(digest)
    except ValueError:
        return None
    return digest


def open_objects(url: str | None, default_root: str | os.PathLike):
    """The objects of a store: ``url`` (fsspec URL or folder), else the folder ``default_root``."""
    if url is None:
        return ObjectStore(default_root)
    if url.startswith("file://") or "://" not in url:
        return ObjectStore(Path(url.removeprefix("file://")).expanduser(), shared=True)
    from nbops.store.remote_objects import FsspecObjects

    return FsspecObjects(url)


class ObjectStore:
    def __init__(self, root: str | os.PathLike, *, shared: bool = False):
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.shared = shared
        self.location = f"file://{self.root.resolve()}" if shared else str(self.root)

    def path(self, digest: str) -> Path:
        return self.root / object_key(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def check(self, digest: str, size: int | None = None) -> str | None:
        """The cheap check (one stat): None when the object is there with ``size``
        bytes (any size when None), else "missing", "truncated" or "wrong size"."""
        try:
            actual = self.path(digest).stat().st_size
        except FileNotFoundError:
            return "missing"
        if size is None or actual == size:
            return None
        return "truncated" if actual < size else "wrong size"

    def verify(self, digest: str) -> bool:
        """Re-hash the object: True only when it exists and its bytes still hash to its name."""
        try:
            return digest_matches(self.path(digest), digest)
        except FileNotFoundError:
            return False

    def probe(self) -> None:
        """A folder needs no check before writing: its errors say their cause when they happen."""

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def age_s(self, digest: str) -> float:
        st = self.path(digest).stat()
        return time.time() - max(st.st_mtime, st.st_ctime)

    def digests(self) -> Iterator[tuple[str, int]]:
        """Every object (digest, bytes), in no particular order."""
        for top in (self.root, self.root / _B3_DIR):
            if not top.is_dir():
                continue
            prefix = "" if top == self.root else f"{_B3_DIR}/"
            for sub in top.iterdir():
                if len(sub.name) != 2 or not sub.is_dir():
                    continue
                for f in sub.iterdir():
                    digest = digest_of_key(f"{prefix}{sub.name}/{f.name}")
                    if digest is not None:
                        try:
                            yield digest, f.stat().st_size
                        except FileNotFoundError:
                            continue

    def put_file(self, src: str | os.PathLike, *, move: bool = False, digest: str | None = None) -> str:
        """Store a file's bytes; with ``move`` the source becomes a link to the object.
        ``digest``: the digest the writer computed while writing (not read again; the
        caller has checked the size); else the file is hashed with ``hash_algorithm()``."""
        digest = digest or digest_file(src)
        target = self.path(digest)
        if not target.exists():
            try:
                self._write(src, target, move)
            except OSError as exc:
                if not os.path.exists(src):
                    raise  # the source vanished: the caller's problem, not the store's
                raise store_error(self.root.parent, exc, f"cannot store an object in {self.root}") from None
        return digest

    def _write(self, src: str | os.PathLike, target: Path, move: bool) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp / uuid.uuid4().hex
        try:
            try:
                os.link(src, tmp) if move else shutil.copyfile(src, tmp)
            except OSError:  # other filesystem, or links not allowed
                shutil.copyfile(src, tmp)
            os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)  # a half-copied object never stays behind

    def materialize(self, digest: str, dest: str | os.PathLike, size: int | None = None) -> None:
        """Make ``dest`` hold the object's bytes: a hard link when possible.
        A missing object, or one whose size is not ``size``, raises CorruptObjectError."""
        problem = self.check(digest, size)
        if problem:
            raise CorruptObjectError(digest, problem, self.path(digest))
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}")
        try:
            os.link(self.path(digest), tmp)
        except OSError:
            shutil.copyfile(self.path(digest), tmp)
        os.replace(tmp, dest)
