"""Writing and hashing files: the one place that does each.

Every file nbops writes goes through ``write_atomic`` (a temporary name in the
same folder, then ``os.replace``), so a crash never leaves a half-written file
under its real name. This module sits in ``runtime/`` (the lowest layer)
because stage kernels need both too.

Content digests name stored objects. A digest says which algorithm made it:

- ``sha256``: 64 lowercase hex digits, bare (every store written so far);
- ``blake3``: ``b3-`` and 64 hex digits (256-bit BLAKE3, the ``blake3`` package).

BLAKE3 is as collision-resistant as sha256 (both 256-bit cryptographic
hashes), so it can name shared, cached objects; xxh3 was measured too
(``benchmarks/bench_handoff.py``) but is not cryptographic: a crafted
collision could swap a cached object, so it never names one. New objects use
``hash_algorithm()`` (``NBOPS_HASH``, sha256 by default); any digest is
verified with its own algorithm (``digest_matches``), so stores that mix both
stay readable and a digest is never compared against a hash of another kind.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

__all__ = [
    "write_atomic", "sha256_file", "sha256_bytes", "SHA256", "BLAKE3", "hash_algorithm", "algorithm_of",
    "new_hasher", "digest_file", "digest_matches", "is_digest",
]  # fmt: skip

SHA256, BLAKE3 = "sha256", "blake3"
_PREFIX = {SHA256: "", BLAKE3: "b3-"}
_DIGEST = re.compile(r"(b3-)?[0-9a-f]{64}")
_BLAKE3_FILE_MIN = 8 << 20  # smaller files: one thread hashes them faster than a pool starts


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


def hash_algorithm() -> str:
    """The algorithm new objects are named by: ``NBOPS_HASH`` (sha256 | blake3), else sha256.

    A stage kernel inherits the driver's environment, so both agree; the driver
    accepts either anyway (a digest names its algorithm)."""
    name = (os.environ.get("NBOPS_HASH") or SHA256).strip().lower()
    if name not in _PREFIX:
        from nbops.errors import UsageError

        raise UsageError(f"NBOPS_HASH={name!r} is not a hash nbops names objects by", "set NBOPS_HASH to sha256 or blake3")
    return name


def is_digest(digest: Any) -> bool:
    return isinstance(digest, str) and _DIGEST.fullmatch(digest) is not None


def algorithm_of(digest: str) -> str:
    """sha256 or blake3; ValueError for anything that is not an object digest."""
    if not is_digest(digest):
        raise ValueError(f"not a sha256 digest (64 hex digits) nor a BLAKE3 one (b3- and 64): {digest!r}")
    return BLAKE3 if digest.startswith(_PREFIX[BLAKE3]) else SHA256


class _Hasher:
    """One running hash: ``update(buffer)`` (releases the GIL on large buffers), ``digest()``."""

    def __init__(self, algorithm: str):
        self.algorithm = algorithm
        self._h = _blake3()() if algorithm == BLAKE3 else hashlib.sha256()

    def update(self, data: Any) -> None:
        self._h.update(data)

    def digest(self) -> str:
        return _PREFIX[self.algorithm] + self._h.hexdigest()


def new_hasher(algorithm: str | None = None) -> _Hasher:
    return _Hasher(algorithm or hash_algorithm())


def digest_file(path: str | os.PathLike, algorithm: str | None = None) -> str:
    """The digest of a file's bytes (BLAKE3 memory-maps and hashes big files on every core)."""
    algorithm = algorithm or hash_algorithm()
    if algorithm == SHA256:
        return sha256_file(path)
    h = _blake3()(max_threads=_blake3().AUTO)
    if os.path.getsize(path) >= _BLAKE3_FILE_MIN:
        h.update_mmap(os.fspath(path))
    else:
        with open(path, "rb") as f:
            h.update(f.read())
    return _PREFIX[BLAKE3] + h.hexdigest()


def digest_matches(path: str | os.PathLike, digest: str) -> bool:
    """True when the file's bytes hash to ``digest`` with the algorithm ``digest`` names."""
    return digest_file(path, algorithm_of(digest)) == digest


def _blake3() -> Any:
    try:
        from blake3 import blake3
    except ImportError:
        from nbops.errors import MissingExtraError

        raise MissingExtraError("objects named by BLAKE3 digests (b3-...)", "fast", "blake3") from None
    return blake3
