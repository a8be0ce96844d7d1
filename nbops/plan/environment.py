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

import os
import sys
from typing import Any

import nbops
from nbops.runtime.reads import package_path

__all__ = ["installed_packages", "base_environment", "base_fingerprint"]

_cache: dict[str, Any] = {"stamp": None, "packages": {}}


def _stamp() -> tuple:
    """Changes when a package is installed or removed: the mtimes of the sys.path folders."""
    out = []
    for entry in sys.path:
        try:
            out.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            continue
    return tuple(out)


def installed_packages() -> dict[str, str]:
    """Distribution name (lower case) -> version, of what this interpreter can import.

    Cached until a ``sys.path`` folder changes, so a long-lived process (the
    Jupyter server) sees a ``pip install`` made while it runs.
    """
    stamp = _stamp()
    if _cache["stamp"] != stamp:
        from importlib.metadata import distributions

        found: dict[str, str] = {}
        for dist in distributions(path=package_path()):
            name = (dist.metadata.get("Name") or "").lower()
            if name and name not in found:
                found[name] = dist.version
        _cache.update(stamp=stamp, packages=dict(sorted(found.items())))
    return dict(_cache["packages"])


def base_environment(kernel_name: str) -> dict[str, str]:
    """What every stage's key holds of the environment."""
    return {"python": sys.version.split()[0], "implementation": sys.implementation.name, "kernel": kernel_name, "nbops": nbops.__version__}


def base_fingerprint(kernel_name: str) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(base_environment(kernel_name), sort_keys=True).encode()).hexdigest()
