"""What every Ray test module shares: the 2-node cluster in a network namespace
(one per test session: `ray start` is the slowest part of these tests) and the
driver that runs a notebook inside it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from netns_cluster import NetnsRayCluster, unavailable  # noqa: E402

WHY_NOT = unavailable()
DRIVER = str(HERE / "driver.py")
GB = 1_000_000_000


def drive(cluster: NetnsRayCluster | None, notebook: Path, *args: str, timeout: float = 180, env: dict | None = None) -> dict:
    """Run ``notebook`` with driver.py (inside the namespace when a cluster is given)."""
    out = notebook.with_suffix(f".{time.time_ns()}.json")
    cmd = [sys.executable, DRIVER, str(notebook), str(out), *args]
    if cluster is None:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=notebook.parent)
    else:
        proc = cluster.run(*cmd, timeout=timeout, check=False, cwd=notebook.parent, env=env)
    assert out.exists(), f"driver wrote no result ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(out.read_text())
