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


def _stamp() -> tuple:
    """Changes when a package is installed or removed: the mtimes of the sys.path folders.

    pip and uv install, upgrade and remove a distribution by creating or deleting its
    ``*.dist-info`` folder directly in a sys.path folder, which changes that folder's
    mtime; an unchanged stamp therefore means an unchanged set of versions."""
    out = []
    for entry in package_path():
        try:
            out.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            continue
    return tuple(out)


def _disk_cache() -> Path | None:
    """Where this interpreter's listing is kept between processes (one file per interpreter
    and path): reading ~500 METADATA files is 0.2-0.4 s, a fully cached ``nbops run`` ~0.05 s."""
    base = os.environ.get("NBOPS_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "nbops")
    if not base or base.startswith("~"):
        return None
    tag = hashlib.sha256(json.dumps([sys.executable, package_path()]).encode()).hexdigest()[:16]
    return Path(base) / f"packages-{tag}.json"


def _read_disk(stamp: tuple) -> dict[str, str] | None:
    path = _disk_cache()
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path else None
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or [list(s) for s in stamp] != data.get("stamp") or not isinstance(data.get("packages"), dict):
        return None
    return data["packages"]


def _write_disk(stamp: tuple, packages: dict[str, str]) -> None:
    path = _disk_cache()
    now = time.time_ns()
    if path is None or any(now - mtime < _RACY_NS for _, mtime in stamp):
        return
    try:
        write_atomic(path, json.dumps({"stamp": [list(s) for s in stamp], "packages": packages}))
    except OSError:
        pass  # a read-only home: the next process lists the packages again


def installed_packages() -> dict[str, str]:
    """Distribution name (lower case) -> version, of what this interpreter can import.

    Cached until a ``sys.path`` folder changes, in this process (the Jupyter server
    sees a ``pip install`` made while it runs) and on disk for the next process.
    """
    stamp = _stamp()
    if _cache["stamp"] != stamp:
        found = _read_disk(stamp)
        if found is None:
            from importlib.metadata import distributions

            found = {}
            for dist in distributions(path=package_path()):
                name = (dist.metadata.get("Name") or "").lower()
                if name and name not in found:
                    found[name] = dist.version
            found = dict(sorted(found.items()))
            _write_disk(stamp, found)
        _cache.update(stamp=stamp, packages=found)
    return dict(_cache["packages"])


def base_environment(kernel_name: str) -> dict[str, str]:
    """What every stage's key holds of the environment."""
    return {"python": sys.version.split()[0], "implementation": sys.implementation.name, "kernel": kernel_name, "nbops": nbops.__version__}


def base_fingerprint(kernel_name: str) -> str:
    return hashlib.sha256(json.dumps(base_environment(kernel_name), sort_keys=True).encode()).hexdigest()
