"""Content-addressed objects: every artifact and executed notebook, stored once.

``objects/ab/cdef...`` holds the bytes whose sha256 is ``abcdef...``. Files
enter by rename (same filesystem) or copy-then-rename, so a reader never sees
a half-written object, and are made read-only: an object is shared by hard
links into run folders and must never change under its name.
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from pathlib import Path

from nbops.runtime.files import sha256_file

__all__ = ["ObjectStore", "sha256_file"]


class ObjectStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.tmp = self.root / "tmp"

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def put_file(self, src: str | os.PathLike, *, move: bool = False, digest: str | None = None) -> str:
        """Store a file's bytes; with ``move`` the source becomes a link to the object.
        ``digest``: the sha256 when the writer already computed it (not read again)."""
        digest = digest or sha256_file(src)
        target = self.path(digest)
        if not target.exists():
            self.tmp.mkdir(parents=True, exist_ok=True)
            tmp = self.tmp / uuid.uuid4().hex
            try:
                os.link(src, tmp) if move else shutil.copyfile(src, tmp)
            except OSError:  # other filesystem, or links not allowed
                shutil.copyfile(src, tmp)
            os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        return digest

    def materialize(self, digest: str, dest: str | os.PathLike) -> None:
        """Make ``dest`` hold the object's bytes: a hard link when possible."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}")
        try:
            os.link(self.path(digest), tmp)
        except OSError:
            shutil.copyfile(self.path(digest), tmp)
        os.replace(tmp, dest)
