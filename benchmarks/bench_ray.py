"""Per-stage overhead: the local executor vs the Ray executor on a 2-node cluster.

    python benchmarks/bench_ray.py [--stages 100] [--repeat 1]

A generated notebook has N independent tiny stages (``--no-cache``): what a
stage costs beyond its own work is then all overhead (kernel, papermill,
marshalling, recording; for Ray also scheduling, worker start, shipping bytes).
Both executors get 2 stages at a time: local ``--jobs 2``; Ray a head and a
worker node of 1 CPU each, in a network namespace of their own (as the tests).

Reported per executor: setup (run start until the first stage starts: kernel
pool or ``ray.init`` + working_dir upload), steady overhead per stage
((last end - first start) x slots / N - the stage's own work) and the whole
wall time / N. Needs root and ray (it reuses tests/ray/netns_cluster.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "ray"))
from netns_cluster import NetnsRayCluster, unavailable  # noqa: E402

DRIVER = str(ROOT / "tests" / "ray" / "driver.py")
SLOTS = 2
WORK_S = 0.0  # what each stage does itself: one assignment


def make_notebook(folder: Path, n: int) -> Path:
    cells = [new_code_cell("import math", metadata={"tags": ["setup"]})]
    cells += [new_code_cell(f"v{i} = {i}", metadata={"tags": [f"stage:s{i:03d}"]}) for i in range(n)]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / f"wide{n}.ipynb"
    nbformat.write(nb, path)
    return path


def drive(cmd_prefix: list[str], notebook: Path, executor: str, timeout: float, env: dict | None = None) -> dict:
    out = notebook.with_suffix(f".{executor}.{time.time_ns()}.json")
    cmd = [*cmd_prefix, sys.executable, DRIVER, str(notebook), str(out), "--executor", executor, "--no-cache"]
    if executor == "local":
        cmd += ["--jobs", str(SLOTS)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=notebook.parent, env=env)
    if not out.exists():
        raise SystemExit(f"{executor} run wrote nothing:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    result = json.loads(out.read_text())
    if result["status"] != "succeeded":
        raise SystemExit(f"{executor} run failed: {[s['error'] for s in result['stages'] if s['error']][:2]}")
    return result


def measure(result: dict, n: int) -> dict:
    events = result["events"]
    starts = [e["t"] for e in events if e["event"] == "started"]
    ends = [e["t"] for e in events if e["event"] in ("succeeded", "failed")]
    durations = [s["duration_s"] for s in result["stages"] if s["duration_s"] is not None]
    waits = [s["worker"].get("ray_wait_s") for s in result["stages"] if s["worker"].get("ray_wait_s") is not None]
    steady = (max(ends) - min(starts)) * SLOTS / n - WORK_S
    return {
        "wall_s": result["wall_s"],
        "setup_s": min(starts) - result["driver_started"],
        "per_stage_s": steady,
        "wall_per_stage_s": result["wall_s"] / n - WORK_S,
        "median_stage_s": statistics.median(durations),
        "median_ray_wait_s": statistics.median(waits) if waits else None,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stages", type=int, default=100)
    p.add_argument("--repeat", type=int, default=1)
    a = p.parse_args()
    why = unavailable()
    if why:
        print(f"skipped: {why}")
        return 0
    rows: dict[str, list[dict]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory(prefix="nbops-bench-ray-") as tmp:
        nb = make_notebook(Path(tmp), a.stages)
        timeout = 60 + 10 * a.stages
        for _ in range(a.repeat):
            rows["local"].append(measure(drive([], nb, "local", timeout), a.stages))
        started = time.time()
        with NetnsRayCluster(cpus=1, gpus=1) as cluster:
            cluster_s = time.time() - started
            for _ in range(a.repeat):
                rows["ray"].append(measure(drive(cluster.ns(), nb, "ray", timeout, env=cluster.env), a.stages))

    def best(name: str, key: str) -> float:
        return min(r[key] for r in rows[name])

    print(f"\n{a.stages} independent tiny stages, 2 at a time, --no-cache; best of {a.repeat}; cluster start (not counted) {cluster_s:.1f} s\n")
    print(f"{'executor':10} {'wall s':>8} {'setup s':>8} {'overhead/stage s':>17} {'wall/stage s':>13} {'median stage s':>15} {'median queued s':>16}")
    for name in ("local", "ray"):
        waits = [r["median_ray_wait_s"] for r in rows[name] if r["median_ray_wait_s"] is not None]
        print(
            f"{name:10} {best(name, 'wall_s'):8.1f} {best(name, 'setup_s'):8.2f} {best(name, 'per_stage_s'):17.3f} "
            f"{best(name, 'wall_per_stage_s'):13.3f} {best(name, 'median_stage_s'):15.3f} "
            f"{(min(waits) if waits else float('nan')):16.3f}"
        )
    ratio = best("ray", "per_stage_s") / best("local", "per_stage_s")
    ratio_wall = best("ray", "wall_per_stage_s") / best("local", "wall_per_stage_s")
    print(f"\nray / local overhead per stage: {ratio:.2f}x steady, {ratio_wall:.2f}x whole run (goal <= 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
