"""What it costs for the cache to see the data and code outside the notebook (issue 17).

1. a full ``nbops run --no-cache`` of each example with read tracking on vs off
   (``NBOPS_TRACK_READS=0``, read by nbops/runtime/context.py; benchmarks only),
   runs interleaved, median of ``--repeat`` (goal: under 2% of a full run);
   plus what the tracker's end-of-stage ``collect()`` costs in one kernel-like
   process that imported pandas, torch and scikit-learn;
2. the pre-reuse check of a stage that read 10,000 small files, nothing changed
   (goal < 0.2 s), after the first fingerprinting;
3. the same check for one big file (``--gb``, 2 GB): first hash vs remembered;
4. papermill of each example, for context (``--papermill``).

    python benchmarks/bench_inputs.py [--examples churn,sales_fanin,digits_torch] [--repeat 3]
                                      [--files 10000] [--gb 2.0] [--papermill]
"""

from __future__ import annotations

import argparse
import os
import resource
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
sys.path.insert(0, str(ROOT))


def wall(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    return timed(cmd, cwd, env)[0]


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + sys) of ``cmd`` and the processes it waited
    for (its kernels). On a shared machine CPU time is the steadier of the two."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bench_tracking(names: list[str], repeat: int, papermill: bool) -> list[tuple]:
    rows = []
    for name in names:
        work = Path(tempfile.mkdtemp(prefix="nbops-bench-inputs-"))
        shutil.copytree(EXAMPLES, work / "ex", ignore=shutil.ignore_patterns(".nbops", "ci"))
        nb = work / "ex" / f"{name}.ipynb"
        run = [PY, "-m", "nbops.cli.main", "run", str(nb), "--no-cache", "--store", str(work / "store")]
        wall(run, work)  # warm the OS caches and the store once, untimed
        on, off, cpu_on, cpu_off = [], [], [], []
        for _ in range(repeat):  # interleaved: drift on a shared machine hits both alike
            for track, walls, cpus in (("1", on, cpu_on), ("0", off, cpu_off)):
                w, c = timed(run, work, {"NBOPS_TRACK_READS": track})
                walls.append(w)
                cpus.append(c)
        pm = None
        if papermill:
            pm = wall([PY, "-m", "papermill", str(nb), str(work / "out.ipynb"), "--cwd", str(nb.parent), "--no-progress-bar"], work)
        rows.append((name, statistics.median(on), statistics.median(off), statistics.median(cpu_on), statistics.median(cpu_off), pm))
        shutil.rmtree(work, ignore_errors=True)
    return rows


COLLECT = """
import time, tempfile, pathlib, sys
import numpy, pandas, sklearn.ensemble, torch
from nbops.runtime import reads
t = reads.install()
t.reset(); t.active = True
folder = pathlib.Path(tempfile.mkdtemp(dir=sys.argv[1]))
for i in range(20):
    (folder / f"f{i}.csv").write_text("x\\n1\\n")
t.reset(); t.active = True
started = time.perf_counter()
for i in range(20):
    pandas.read_csv(folder / f"f{i}.csv")
read_s = time.perf_counter() - started
t.active = False
started = time.perf_counter(); records = t.collect(folder / "_art"); first = time.perf_counter() - started
started = time.perf_counter(); t.collect(folder / "_art"); again = time.perf_counter() - started
print(first, again, len(records), read_s)
"""


def bench_collect() -> tuple[float, float, int]:
    """collect() in a fresh process, as in a fresh stage kernel (its first call scans
    the installed distributions once; a kernel runs one stage)."""
    with tempfile.TemporaryDirectory(prefix="nbops-collect-", dir=Path.home()) as home:
        out = subprocess.run([PY, "-c", COLLECT, home], capture_output=True, text=True, cwd=home, check=True)
    first, again, count, _ = out.stdout.split()
    return float(first), float(again), int(count)


def bench_many_files(count: int) -> tuple[float, float, float]:
    from nbops.plan.fingerprint import HashMemo, changed_deps, deps_from_records, installed_packages

    work = Path(tempfile.mkdtemp(prefix="nbops-bench-files-"))
    try:
        data = work / "data"
        data.mkdir()
        for i in range(count):
            (data / f"part{i:05d}.csv").write_text(f"x\n{i}\n")
        past = time.time() - 60  # older than the racy window: the memo may remember them
        for p in data.iterdir():
            os.utime(p, (past, past))
        records = [{"kind": "dir", "abspath": str(data)}] + [{"kind": "file", "abspath": str(p)} for p in sorted(data.iterdir())]
        memo = HashMemo(work / "hashes.db")
        started = time.perf_counter()
        deps = deps_from_records(records, str(work), memo)
        first = time.perf_counter() - started
        packages = installed_packages()
        checks = []
        for _ in range(5):
            started = time.perf_counter()
            assert changed_deps(deps, str(work), memo, packages) == []
            checks.append(time.perf_counter() - started)
        started = time.perf_counter()
        installed_packages()
        packages_s = time.perf_counter() - started
        return first, statistics.median(checks), packages_s
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_big_file(gb: float) -> tuple[float, float, float, int]:
    from nbops.plan.fingerprint import HashMemo, changed_deps, deps_from_records

    work = Path(tempfile.mkdtemp(prefix="nbops-bench-big-"))
    try:
        big = work / "big.bin"
        chunk = os.urandom(64 * 1024 * 1024)
        size = 0
        with open(big, "wb") as f:
            while size < gb * 1e9:
                f.write(chunk)
                size += len(chunk)
        past = time.time() - 60
        os.utime(big, (past, past))
        memo = HashMemo(work / "hashes.db")
        started = time.perf_counter()
        deps = deps_from_records([{"kind": "file", "abspath": str(big)}], str(work), memo)
        first = time.perf_counter() - started
        started = time.perf_counter()
        assert changed_deps(deps, str(work), memo, {}) == []
        remembered = time.perf_counter() - started
        os.utime(big, (past + 1, past + 1))  # touched, same bytes: hashed again, still unchanged
        started = time.perf_counter()
        assert changed_deps(deps, str(work), memo, {}) == []
        touched = time.perf_counter() - started
        return first, remembered, touched, size
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", default="churn,sales_fanin,digits_torch")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--gb", type=float, default=2.0)
    p.add_argument("--papermill", action="store_true", help="also time papermill of each example, once")
    p.add_argument("--skip-runs", action="store_true", help="only the fingerprint parts (2, 3)")
    a = p.parse_args()

    if not a.skip_runs:
        rows = bench_tracking([n for n in a.examples.split(",") if n], a.repeat, a.papermill)
        print(f"\n1. full `nbops run --no-cache`, read tracking on vs off (median of {a.repeat}; goal: cost < 2%)")
        print(f"{'notebook':14} {'wall on':>8} {'wall off':>8} {'cost':>7} {'cpu on':>8} {'cpu off':>8} {'cost':>7} {'papermill s':>12}")
        for name, on, off, cpu_on, cpu_off, pm in rows:
            pm_s = "-" if pm is None else f"{pm:.2f}"
            print(f"{name:14} {on:8.2f} {off:8.2f} {(on - off) / off:+7.1%} {cpu_on:8.2f} {cpu_off:8.2f} {(cpu_on - cpu_off) / cpu_off:+7.1%} {pm_s:>12}")
        first, again, count = bench_collect()
        print(f"   collect() at the end of a stage (pandas, torch, sklearn imported; {count} records): "
              f"{first:.3f} s in a fresh kernel, {again:.3f} s once the distribution scan is cached")  # fmt: skip

    first, check, packages_s = bench_many_files(a.files)
    print(f"\n2. a stage that read {a.files:,} small files, nothing changed (goal < 0.2 s)")
    print(f"   first fingerprint {first:.3f} s; pre-reuse check {check:.3f} s (median of 5); "
          f"installed_packages() {packages_s:.3f} s, once per run")  # fmt: skip

    first, remembered, touched, size = bench_big_file(a.gb)
    print(f"\n3. a stage that read one {size / 1e9:.1f} GB file")
    print(f"   first hash {first:.2f} s ({size / first / 1e9:.2f} GB/s); remembered {remembered * 1000:.1f} ms; "
          f"touched, same bytes (hashed again) {touched:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
