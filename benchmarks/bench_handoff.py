"""A DataFrame handed from one stage to the next vs a plain file copy of the same bytes,
and the hash algorithms' speed on this CPU.

1. Hashes: sha256 (hashlib, OpenSSL: SHA-NI where the CPU has it), BLAKE3 on one
   thread and on every core, xxh3-128 (measured for comparison only: it is not
   cryptographic, so it never names an object), and a memory copy, in GB/s.
2. In one process (no kernels): save (Arrow IPC, hashed while written), store
   (a link and a rename into objects/), load (zero-copy) and verify-on-read (a
   full re-hash of the object), per algorithm, on a float frame and on a
   string/categorical-heavy one.
3. Real runs (``nbops.api.run``, kernels): a two-stage notebook, ``make`` builds
   the frame, ``use`` reads it; save and load are the generated cells' own
   durations, store is the driver's gap between the stages. Run once per
   algorithm (``NBOPS_HASH``, which the stage kernels inherit).

The alternative, side by side: ``shutil.copyfile`` of the very object the run
stored (the same bytes; page cache warm for both). Ratio = handoff throughput /
copy throughput; "verified" adds the full re-hash a cached producer's object
gets before a stage loads it (``Scheduler.inputs_intact``). Goal >= 0.6.

    python benchmarks/bench_handoff.py            # 0.25 GB: a few minutes on a loaded 2-core machine
    python benchmarks/bench_handoff.py --gb 1     # the issue's size
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL = 0.6


def best(f, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_hashes(mb: int) -> dict[str, float]:
    data = os.urandom(mb * 2**20)
    gbps = {}
    gbps["sha256 (hashlib)"] = len(data) / best(lambda: hashlib.sha256(data).digest()) / 1e9
    try:
        import blake3

        gbps["blake3, 1 thread"] = len(data) / best(lambda: blake3.blake3(data).digest()) / 1e9
        gbps["blake3, all cores"] = len(data) / best(lambda: blake3.blake3(data, max_threads=blake3.blake3.AUTO).digest()) / 1e9
    except ImportError:
        print("(blake3 not installed: pip install blake3)")
    try:
        import xxhash

        gbps["xxh3-128 (not cryptographic)"] = len(data) / best(lambda: xxhash.xxh3_128(data).digest()) / 1e9
    except ImportError:
        print("(xxhash not installed: pip install xxhash)")
    gbps["memory copy"] = len(data) / best(lambda: bytearray(data)) / 1e9
    return gbps


def verify_and_copy(objects, digest: str, work: Path) -> tuple[float, float]:
    """The full re-hash of an object, and a plain copy of its bytes (the alternative)."""
    assert objects.verify(digest)
    verify = best(lambda: objects.verify(digest), 2)
    copy = best(lambda: shutil.copyfile(objects.path(digest), work / "copy.bin"), 2)
    os.unlink(work / "copy.bin")
    return verify, copy


def frames(gb: float, mixed_share: float = 0.25):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = int(gb * 1024**3 / (16 * 8))
    floats = pd.DataFrame(rng.random((rows, 16)), columns=[f"c{i}" for i in range(16)])
    n = max(1000, int(gb * mixed_share * 1024**3 / 48))  # about 48 bytes a row
    words = np.array([f"customer-{i:06d}" for i in range(5000)], dtype=object)
    mixed = pd.DataFrame(
        {
            "name": pd.array(words[rng.integers(0, len(words), n)], dtype="str"),
            "city": pd.Categorical.from_codes(rng.integers(0, 3, n), ["Lyon", "Oslo", "Lima"]),
            "plan": pd.Categorical.from_codes(rng.integers(0, 4, n), ["free", "pro", "team", "corp"]),
            "spend": rng.random(n),
            "visits": rng.integers(0, 100, n),
        }
    )
    return {"floats": floats, "strings+categoricals": mixed}


def bench_in_process(gb: float, algorithms: list[str], work: Path) -> list[dict]:
    from nbops.runtime.marshal import load_value, save_value_hashed
    from nbops.store.objects import ObjectStore

    rows = []
    for label, frame in frames(gb).items():
        for algorithm in algorithms:
            os.environ["NBOPS_HASH"] = algorithm
            folder, objects = work / f"inproc-{algorithm}", ObjectStore(work / f"objects-{algorithm}")
            shutil.rmtree(folder, ignore_errors=True)
            t = time.perf_counter()
            path, serializer, digest = save_value_hashed(folder, "df", frame)
            save = time.perf_counter() - t
            t = time.perf_counter()
            objects.put_file(path, move=True, digest=digest)
            store = time.perf_counter() - t
            t = time.perf_counter()
            loaded = load_value(path, serializer)
            load = time.perf_counter() - t
            assert loaded.dtypes.to_dict() == frame.dtypes.to_dict(), (loaded.dtypes, frame.dtypes)
            del loaded
            verify, copy = verify_and_copy(objects, digest, work)
            rows.append(dict(frame=label, algorithm=algorithm, bytes=path.stat().st_size, save=save, store=store, load=load, verify=verify, copy=copy))
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(work / f"objects-{algorithm}", ignore_errors=True)
    return rows


HANDOFF_NB = {
    "cells": [
        {"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]}, "outputs": [], "execution_count": None, "source": "rows = 1000"},
        {
            "cell_type": "code",
            "id": "a",
            "metadata": {"tags": ["stage:make"]},
            "outputs": [],
            "execution_count": None,
            "source": "import numpy as np, pandas as pd\n"
            "df = pd.DataFrame(np.random.default_rng(0).random((rows, 16)), columns=[f'c{i}' for i in range(16)])\n"
            "nbytes = int(df.memory_usage(index=True).sum())",
        },
        {"cell_type": "code", "id": "b", "metadata": {"tags": ["stage:use"]}, "outputs": [], "execution_count": None, "source": "n = len(df) + nbytes * 0"},
    ],
    "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def bench_run(gb: float, algorithm: str, work: Path) -> dict:
    import nbformat

    from nbops import api

    os.environ["NBOPS_HASH"] = algorithm
    folder = work / f"run-{algorithm}"
    folder.mkdir()
    nb = folder / "handoff.ipynb"
    nb.write_text(json.dumps(HANDOFF_NB))
    store = folder / "store"
    run = api.run(nb, {"rows": int(gb * 1024**3 / (16 * 8))}, store=store)
    assert run["status"] == "succeeded", run

    def cell_seconds(stage: str, cell_id: str) -> float:
        path = api.stage_notebook(run["id"], stage, path=nb, store=store)
        cells = nbformat.read(path, as_version=4).cells
        return next(c for c in cells if c.get("id") == cell_id).metadata.papermill.duration

    raw = api.open_store(store, nb).get_run(run["id"])["stages"]
    meta = raw[0]["outputs"]["df"]
    digest, nbytes = meta["sha256"], meta["bytes"]
    rs = api.open_store(store, nb)
    objects = rs.objects
    verify, copy = verify_and_copy(objects, digest, work)
    result = dict(
        algorithm=algorithm, digest=digest, bytes=nbytes, save=cell_seconds("make", "nbops-outputs"),
        store=raw[1]["started_at"] - raw[0]["ended_at"], load=cell_seconds("use", "nbops-inputs"), verify=verify, copy=copy,
    )  # fmt: skip
    shutil.rmtree(folder, ignore_errors=True)
    return result


def ratios(r: dict) -> tuple[float, float, float]:
    handoff = r["save"] + r["store"] + r["load"]
    copy_gbps = r["bytes"] / r["copy"] / 1e9
    return handoff, (r["bytes"] / handoff / 1e9) / copy_gbps, (r["bytes"] / (handoff + r["verify"]) / 1e9) / copy_gbps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=0.25, help="size of the float frame (the issue's goal: 1)")
    parser.add_argument("--algorithms", default="sha256,blake3")
    parser.add_argument("--skip-runs", action="store_true", help="no kernels: hashes and the in-process handoff only")
    args = parser.parse_args()
    algorithms = args.algorithms.split(",")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other processes share it: numbers vary)")

    print("\nhash speed, 256 MiB in memory, best of 3:")
    for name, gbps in bench_hashes(256).items():
        print(f"  {name:<30} {gbps:6.2f} GB/s")

    work = Path(tempfile.mkdtemp(prefix="nbops-bench-handoff-"))
    try:
        print(f"\nin one process, {args.gb:g} GB float frame (and a strings+categoricals frame a quarter its size):")
        head = f"  {'frame':<21} {'hash':<7} {'GB':>5} {'save':>6} {'store':>6} {'load':>6} {'verify':>6} {'copy':>6} {'ratio':>6} {'+verify':>7}"
        print(head)
        for r in bench_in_process(args.gb, algorithms, work):
            _, ratio, verified = ratios(r)
            print(
                f"  {r['frame']:<21} {r['algorithm']:<7} {r['bytes'] / 1e9:5.2f} {r['save']:6.2f} {r['store']:6.3f} {r['load']:6.3f}"
                f" {r['verify']:6.2f} {r['copy']:6.2f} {ratio:6.2f} {verified:7.2f}"
            )
        if not args.skip_runs:
            print(f"\nreal runs (nbops.api.run, kernels), {args.gb:g} GB float frame:")
            print(f"  {'hash':<7} {'GB':>5} {'save':>6} {'store':>6} {'load':>6} {'verify':>6} {'copy':>6} {'ratio':>6} {'+verify':>7}  digest")
            for algorithm in algorithms:
                r = bench_run(args.gb, algorithm, work)
                _, ratio, verified = ratios(r)
                print(
                    f"  {algorithm:<7} {r['bytes'] / 1e9:5.2f} {r['save']:6.2f} {r['store']:6.3f} {r['load']:6.3f} {r['verify']:6.2f}"
                    f" {r['copy']:6.2f} {ratio:6.2f} {verified:7.2f}  {r['digest'][:15]}"
                )
        print(
            f"\nseconds; ratio = handoff (save + store + load) throughput / copy throughput, goal >= {GOAL};"
            "\n+verify = the same with a full re-hash of the object (verify-on-read of a cached producer's output)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
