"""The environment as the cache sees it.

A stage's cache key holds only the base of the environment: the Python
version, the kernel and nbops itself. Package versions are not in the key:
each stage records the distributions it actually imported (its ``deps``,
see ``plan/fingerprint.py``), and a cached result is reused only while
those still have the recorded versions. Installing an unrelated package
therefore keeps the cache; upgrading scikit-learn re-runs the stages that
imported it, and says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import nbops
from nbops.runtime.files import write_atomic
from nbops.runtime.reads import package_path

__all__ = ["installed_packages", "base_environment", "base_fingerprint"]

_cache: dict[str, Any] = {"stamp": None, "packages": {}}
# A folder modified this recently may change again within the same mtime tick ("racily
# clean", as git calls it): the listing is used, but not written down for the next process.
_RACY_NS = 2_000_000_000


def _has_metadata(folder: str) -> bool:
    try:
        with os.scandir(folder or ".") as it:
            return any(e.name.endswith((".dist-info", ".egg-info")) for e in it)
    except OSError:
        return False


def _stamp(known: list | None = None) -> list:
    """What changes when a package is installed, upgraded or removed: per sys.path folder,
    its mtime, and whether it holds distribution metadata at all.

    pip and uv install, upgrade and remove a distribution by creating or deleting its
    ``*.dist-info`` folder directly in a sys.path folder, which changes that folder's
    mtime. A folder holding no metadata (the working folder, a source checkout) changes
    for other reasons all the time: its mtime matters only once metadata appears in it
    (``_same``). ``known``: an earlier stamp, whose answers are reused for unchanged folders."""
    before = {e[0]: e for e in known or []}
    out = []
    for entry in package_path():
        try:
            mtime = os.stat(entry or ".").st_mtime_ns
        except OSError:
            continue
        old = before.get(entry)
        out.append([entry, mtime, old[2] if old is not None and old[1] == mtime else _has_metadata(entry)])
    return out


def _same(now: list, then: object) -> bool:
    if not isinstance(then, list) or [e[0] for e in now] != [e[0] for e in then if isinstance(e, list) and len(e) == 3]:
        return False
    return all(a[1] == b[1] or not (a[2] or b[2]) for a, b in zip(now, then))


def _disk_cache() -> Path | None:
    """Where this interpreter's listing is kept between processes (one file per interpreter
    and path): reading ~500 METADATA files is 0.2-0.4 s, a fully cached ``nbops run`` ~0.05 s."""
    base = os.environ.get("NBOPS_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "nbops")
    if not base or base.startswith("~"):
        return None
    tag = hashlib.sha256(json.dumps([sys.executable, package_path()]).encode()).hexdigest()[:16]
    return Path(base) / f"packages-{tag}.json"


def _read_disk() -> tuple[list, dict[str, str]] | None:
    path = _disk_cache()
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path else None
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("stamp"), list) or not isinstance(data.get("packages"), dict):
        return None
    return data["stamp"], data["packages"]


def _write_disk(stamp: list, packages: dict[str, str]) -> None:
    path = _disk_cache()
    now = time.time_ns()
    if path is None or any(meta and now - mtime < _RACY_NS for _, mtime, meta in stamp):
        return
    try:
        write_atomic(path, json.dumps({"stamp": stamp, "packages": packages}))
    except OSError:
        pass  # a read-only home: the next process lists the packages again


def installed_packages() -> dict[str, str]:
    """Distribution name (lower case) -> version, of what this interpreter can import.

    Cached until a ``sys.path`` folder changes, in this process (the Jupyter server
    sees a ``pip install`` made while it runs) and on disk for the next process.
    """
    stamp = _stamp(_cache["stamp"])
    if not _same(stamp, _cache["stamp"]):
        disk = _read_disk()
        found = disk[1] if disk is not None and _same(stamp, disk[0]) else None
        if found is None:
            from importlib.metadata import distributions

            found = {}
            for dist in distributions(path=package_path()):
                name = (dist.metadata.get("Name") or "").lower()
                if name and name not in found:
                    found[name] = dist.version
            found = dict(sorted(found.items()))
            _write_disk(stamp, found)
        _cache["packages"] = found
    _cache["stamp"] = stamp
    return dict(_cache["packages"])


def base_environment(kernel_name: str) -> dict[str, str]:
    """What every stage's key holds of the environment."""
    return {"python": sys.version.split()[0], "implementation": sys.implementation.name, "kernel": kernel_name, "nbops": nbops.__version__}


def base_fingerprint(kernel_name: str) -> str:
    return hashlib.sha256(json.dumps(base_environment(kernel_name), sort_keys=True).encode()).hexdigest()
