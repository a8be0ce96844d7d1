"""Finding and joining a Ray cluster, and what the driver sends it.

Driver side only: which address a run means (``--address``, ``$RAY_ADDRESS``,
the cluster ``ray start`` recorded on this machine), a fast probe so a dead
address fails in seconds rather than after Ray's long retries, ``ray.init``
with errors people can act on, the ``runtime_env`` (the notebook's folder and
the nbops package) and whether any live node could ever hold a stage.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from nbops.errors import MissingExtraError, UsageError

__all__ = ["import_ray", "resolve_address", "probe", "connect", "runtime_env", "infeasible", "no_cluster", "DEFAULT_EXCLUDES"]

log = logging.getLogger("nbops.ray")

# Never shipped to workers in the working_dir (gitignore syntax, relative to it).
DEFAULT_EXCLUDES = [".nbops/", ".git/", ".ipynb_checkpoints/", "__pycache__/", ".venv*/", "venv/", "node_modules/", "*.pyc"]
# Files above this size stay behind (Ray caps a working_dir at 500 MiB); read them from shared storage.
MAX_SHIPPED_FILE = int(os.environ.get("NBOPS_RAY_MAX_FILE_MB", "50")) * 2**20


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingExtraError("--executor ray", "ray", "ray") from None
    return ray


def resolve_address(address: str | None) -> str:
    """The cluster a run means: ``address``, else ``$RAY_ADDRESS``, else ``"auto"`` (what ``ray start`` recorded).

    The one place this fallback is written: surfaces pass ``--address`` through as given (None when absent).
    """
    return address or os.environ.get("RAY_ADDRESS") or "auto"


def no_cluster(address: str, why: str) -> UsageError:
    return UsageError(
        f"no Ray cluster to connect to at {address!r}: {why}".strip(),
        "start one with 'ray start --head --num-gpus N' (then plain --executor ray finds it), or point nbops "
        "at one: --address ray://HEAD:10001 or RAY_ADDRESS=HEAD:6379; '--address local' starts a "
        "throwaway single-machine cluster",
    )


def probe(address: str, timeout: float = 5) -> None:
    """Fail in seconds, not minutes (Ray retries a dead address for long), when nothing listens there."""
    original = address
    if address == "local":
        return
    if address == "auto":  # the cluster `ray start` recorded on this machine, which may be long gone
        try:
            from ray._private.services import canonicalize_bootstrap_address_or_die
        except ImportError:  # a Ray without it: let ray.init find out
            return
        try:
            address = canonicalize_bootstrap_address_or_die("auto")
        except ConnectionError as exc:
            raise no_cluster("auto", str(exc)) from None
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise no_cluster(original, f"nothing answers at {target} ({exc.strerror or exc})") from None


def connect(ray: Any, address: str, env: dict[str, Any], cwd: str) -> None:
    """``ray.init`` on ``address`` (``"local"``: a throwaway cluster in this process), errors made actionable."""
    kwargs: dict[str, Any] = dict(runtime_env=env, namespace="nbops", logging_level=logging.WARNING, log_to_driver=False)
    if address == "local":
        kwargs["include_dashboard"] = False
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        raise no_cluster(address, str(exc)) from None
    except Exception as exc:
        if type(exc).__name__ == "AuthenticationError" or "token" in str(exc).lower():
            raise UsageError(
                f"could not join the Ray cluster at {address!r}: {exc}",
                "use the cluster's auth token (RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH, with RAY_AUTH_MODE=token)",
            ) from None
        if "runtime_env" in str(exc) or "working_dir" in str(exc) or type(exc).__name__ == "RuntimeEnvSetupError":
            raise UsageError(
                f"could not send the notebook's folder {cwd} to the Ray cluster: {exc}",
                "make the folder smaller (Ray caps a working_dir at 500 MiB): move big data to shared storage, "
                "or lower NBOPS_RAY_MAX_FILE_MB so big files stay behind",
            ) from None
        raise


def infeasible(nodes: list[dict], gpus: float, cpus: float, memory: float) -> str | None:
    """Why no node of ``nodes`` could ever hold a stage asking for this much (their totals, not what is free now), or None."""
    want = {"GPU": float(gpus or 0), "CPU": float(cpus or 0), "memory": float(memory or 0)}
    for node in nodes:
        have = node.get("Resources", {})
        if all(have.get(k, 0.0) >= v for k, v in want.items() if v):
            return None
    asked = ", ".join(f"{k}={v:g}" for k, v in want.items() if v) or "nothing"
    largest = max((n.get("Resources", {}).get("GPU", 0.0) for n in nodes), default=0.0)
    return f"it asks for {asked}; {len(nodes)} live node(s), at most {largest:g} GPU(s) on one"


def runtime_env(cwd: str, store: Any, ship_nbops: bool, excludes: list[str] | None) -> dict[str, Any]:
    """What reaches the workers: the stages' working folder and the nbops package."""
    skip = list(DEFAULT_EXCLUDES) + list(excludes or [])
    root = getattr(store, "root", None)
    if root is not None:
        try:
            skip.append("/" + Path(root).resolve().relative_to(Path(cwd).resolve()).as_posix() + "/")
        except ValueError:
            pass  # the store is elsewhere: nothing to leave out
    big = _big_files(cwd)
    if big:
        log.warning("not sent to Ray workers (over %d MB): %s", MAX_SHIPPED_FILE >> 20, ", ".join(big[:10]))
    env: dict[str, Any] = {"working_dir": cwd, "excludes": skip + ["/" + p for p in big]}
    if ship_nbops:
        import nbops

        env["py_modules"] = [str(Path(nbops.__file__).parent)]
    return env


def _big_files(cwd: str, limit: int = 20000) -> list[str]:
    pruned = {d.rstrip("/") for d in DEFAULT_EXCLUDES if d.endswith("/")}
    found, seen = [], 0
    for folder, dirs, files in os.walk(cwd):
        dirs[:] = [d for d in dirs if d not in pruned]
        for name in files:
            seen += 1
            path = os.path.join(folder, name)
            try:
                if os.path.getsize(path) > MAX_SHIPPED_FILE:
                    found.append(os.path.relpath(path, cwd).replace(os.sep, "/"))
            except OSError:
                pass
        if seen > limit:
            break
    return sorted(found)
