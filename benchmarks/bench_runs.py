"""Runs vs papermill, side by side in one process tree.

1. full `nbops run` (fresh store, nothing cached) vs `papermill` of the
   untouched notebook, on each example (goal <= 1.3x);
2. `nbops run` after editing only the last stage vs the full papermill run
   (goal <= 0.3x);
3. a 1 GB DataFrame handed from one stage to the next (save, hash into the
   store, load) vs a plain file copy of the same number of bytes
   (goal >= 0.5x the copy's throughput).

    python benchmarks/bench_runs.py [--examples churn,sales_fanin,digits_torch] [--gb 1.0] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "example_notebooks"
PY = sys.executable
# The nbops CLI skips importing rfc3987_syntax (2-3 s of Lark grammars that jsonschema
# pulls in here, see nbops/cli/main.py). So that the ratio measures pipelines, not
# that import, papermill is timed both as installed and with the same skip.
PAPERMILL = [PY, "-m", "papermill"]
PAPERMILL_FAIR = [PY, "-c", "import sys; sys.modules['rfc3987_syntax'] = None; from papermill.cli import papermill; papermill()"]


def wall(cmd: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{result.stderr[-2000:]}")
    return elapsed


def edit_last_stage(nb_path: Path) -> None:
    nb = json.loads(nb_path.read_text())

    def text(cell: dict) -> str:
        return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]

    stage_cells = [
        i for i, c in enumerate(nb["cells"]) if any(t.startswith("stage:") for t in c.get("metadata", {}).get("tags", [])) or text(c).startswith("%%stage")
    ]
    last = nb["cells"][stage_cells[-1]]
    last["source"] = text(last) + "\n_edit_marker = " + str(time.time_ns())
    nb_path.write_text(json.dumps(nb))


def bench_examples(names: list[str], repeat: int) -> list[tuple]:
    rows = []
    for name in names:
        work = Path(tempfile.mkdtemp(prefix="nbops-bench-"))
        shutil.copytree(EXAMPLES, work / "ex", ignore=shutil.ignore_patterns(".nbops", "ci"))
        nb = work / "ex" / f"{name}.ipynb"
        pm, pm_as_installed, full, edited = [], [], [], []
        for r in range(repeat):
            args = [str(nb), str(work / "out.ipynb"), "--cwd", str(nb.parent), "--no-progress-bar"]
            pm_as_installed.append(wall(PAPERMILL + args, work))
            pm.append(wall(PAPERMILL_FAIR + args, work))
            full.append(wall([PY, "-m", "nbops.cli.main", "run", str(nb), "--store", str(work / f"store{r}")], work))
            edit_last_stage(nb)
            edited.append(wall([PY, "-m", "nbops.cli.main", "run", str(nb), "--store", str(work / f"store{r}")], work))
        rows.append((name, statistics.median(pm_as_installed), statistics.median(pm), statistics.median(full), statistics.median(edited)))
        shutil.rmtree(work, ignore_errors=True)
    return rows


HANDOFF_NB = {
    "cells": [
        {"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]}, "source": "rows = 1000", "outputs": [], "execution_count": None},
        {
            "cell_type": "code",
            "id": "a",
            "metadata": {"tags": ["stage:make"]},
            "outputs": [],
            "execution_count": None,
            "source": "import numpy as np, pandas as pd\ndf = pd.DataFrame(np.random.default_rng(0).random((rows, 16)), columns=[f'c{i}' for i in range(16)])\nnbytes = int(df.memory_usage(index=True).sum())",
        },
        {"cell_type": "code", "id": "b", "metadata": {"tags": ["stage:use"]}, "outputs": [], "execution_count": None, "source": "n = len(df) + nbytes * 0"},
    ],
    "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def bench_handoff(gb: float) -> dict:
    sys.path.insert(0, str(ROOT))
    import nbformat

    from nbops import api

    work = Path(tempfile.mkdtemp(prefix="nbops-handoff-"))
    nb = work / "handoff.ipynb"
    nb.write_text(json.dumps(HANDOFF_NB))
    rows = int(gb * 1024**3 / (16 * 8))
    run = api.run(nb, {"rows": rows}, store=work / "store")
    assert run["status"] == "succeeded", run
    make, use = run["stages"]
    nbytes = make["scalars"]["nbytes"]

    def cell_seconds(stage: str, cell_id: str) -> float:
        path = api.stage_notebook(run["id"], stage, path=nb, store=work / "store")
        cells = nbformat.read(path, as_version=4).cells
        return next(c for c in cells if c.get("id") == cell_id).metadata.papermill.duration

    from datetime import datetime

    def ts(s: str) -> float:
        return datetime.fromisoformat(s).timestamp()

    save = cell_seconds("make", "nbops-outputs")
    load = cell_seconds("use", "nbops-inputs")
    store_api = api.open_store(work / "store", nb)
    raw = store_api.get_run(run["id"])["stages"]
    ingest = raw[1]["started_at"] - raw[0]["ended_at"]  # hashing + moving into objects/, then scheduling
    handoff = save + ingest + load
    # The alternative: copy the same number of bytes, file to file.
    src, dst = work / "raw.bin", work / "raw-copy.bin"
    with open(src, "wb") as f:
        chunk = os.urandom(64 * 1024 * 1024)
        for _ in range(max(1, nbytes // len(chunk))):
            f.write(chunk)
    copy_times = []
    for _ in range(2):
        t = time.perf_counter()
        shutil.copyfile(src, dst)
        copy_times.append(time.perf_counter() - t)
        dst.unlink()
    copy = min(copy_times)
    size = src.stat().st_size
    shutil.rmtree(work, ignore_errors=True)
    return {
        "bytes": nbytes,
        "save": save,
        "ingest": ingest,
        "load": load,
        "handoff": handoff,
        "handoff_gbps": nbytes / handoff / 1e9,
        "copy": copy,
        "copy_gbps": size / copy / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", default="churn,sales_fanin,digits_torch")
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-handoff", action="store_true")
    args = parser.parse_args()

    rows = bench_examples(args.examples.split(","), args.repeat)
    print(f"\n{'example':<14} {'papermill*':>10} {'papermill':>10} {'nbops run':>10} {'ratio':>6} {'edit-last':>10} {'ratio':>6}")
    for name, pm_raw, pm, full, edited in rows:
        print(f"{name:<14} {pm_raw:>10.2f} {pm:>10.2f} {full:>10.2f} {full / pm:>6.2f} {edited:>10.2f} {edited / pm:>6.2f}")
    print("seconds, wall time of the CLI, median; ratios against 'papermill' (same import skip as nbops);")
    print("papermill* = the papermill CLI as installed. goals: nbops run / papermill <= 1.30; edit-last / papermill <= 0.30")

    if not args.skip_handoff:
        h = bench_handoff(args.gb)
        print(
            f"\nDataFrame handoff, {h['bytes'] / 1e9:.2f} GB: save {h['save']:.2f} s + store {h['ingest']:.2f} s + load {h['load']:.2f} s"
            f" = {h['handoff']:.2f} s -> {h['handoff_gbps']:.2f} GB/s"
        )
        print(f"plain file copy of the same bytes: {h['copy']:.2f} s -> {h['copy_gbps']:.2f} GB/s")
        print(f"ratio handoff / copy throughput: {h['handoff_gbps'] / h['copy_gbps']:.2f} (goal >= 0.5)")


if __name__ == "__main__":
    main()
