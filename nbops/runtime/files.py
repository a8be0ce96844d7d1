"""Writing and hashing files: the one place that does each.

Every file nbops writes goes through ``write_atomic`` (a temporary name in the
same folder, then ``os.replace``), so a crash never leaves a half-written file
under its real name. Every content hash is ``sha256_file``. This module sits in
``runtime/`` (the lowest layer) because stage kernels need both too.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["write_atomic", "sha256_file", "sha256_bytes"]


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` all or nothing; creates the parent folder."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def sha256_file(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
