"""What a run records about where it ran: environment, GPUs, git state."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbops
from nbops.plan.environment import base_fingerprint, installed_packages

__all__ = ["capture_env", "git_state", "detect_gpus"]

_MAX_DIFF = 512 * 1024


def detect_gpus() -> list[str]:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES if set, else nvidia-smi."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
            return [line.strip() for line in out.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            return []
    return []


def _gpu_description() -> list[dict[str, str]]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            gpus.append(dict(zip(("index", "name", "memory", "driver"), parts)))
    return gpus


def capture_env(kernel_name: str) -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "kernel": kernel_name,
        "nbops": nbops.__version__,
        "packages": installed_packages(),
        "fingerprint": base_fingerprint(kernel_name),
        "gpus": _gpu_description(),
        "gpu_ids": detect_gpus(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def git_state(folder: str | os.PathLike) -> dict[str, Any] | None:
    """Commit, branch and uncommitted diff of the repo holding ``folder``, if any."""
    if not shutil.which("git"):
        return None

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    status = git("status", "--porcelain") or ""
    diff = git("diff", "HEAD") or ""
    return {
        "commit": commit.strip(),
        "branch": (git("rev-parse", "--abbrev-ref", "HEAD") or "").strip(),
        "root": str(Path((git("rev-parse", "--show-toplevel") or "").strip())),
        "dirty": bool(status.strip()),
        "status": status[:_MAX_DIFF],
        "diff": diff[:_MAX_DIFF],
        "diff_truncated": len(diff) > _MAX_DIFF,
    }
