"""Batch prediction (issue 13): ``nbops predict`` vs a plain pandas loop, side by side.

The churn example is run once (its default 5,000 customers and 100 trees unless
``--trees``), its model registered and promoted as ``churn@production`` in a
temporary store. N rows of churn features (default 1 million; ``--rows 10000000``
for the issue's 10 million) are written once to a CSV in a temp folder. Then, each
in its own subprocess (so its peak RSS, ``ru_maxrss``, is its own):

- nbops: ``nbops predict churn@production data.csv -o out.parquet`` (the CLI's own
  code path: the signature check, chunks of ``--chunk-rows``, prediction and class
  probabilities, one Parquet file with the model in its metadata);
- pandas, the issue's baseline: ``pd.read_csv(chunksize=...)``, ``model.predict``,
  ``to_parquet`` of each chunk (one part file per chunk), with the same pickled model;
- pandas + proba: the same loop also calling ``model.predict_proba``, so it writes
  what nbops writes (a forest's predict is itself a predict_proba: twice the work).

Each is timed wall clock and CPU (user + sys, all threads: the steadier number on a
shared machine). Goals: nbops at least as fast (baseline time / nbops time ≥ 1×),
peak memory ≤ 1 GB. The outputs are compared row for row. ``--work DIR`` keeps the
model and the CSV for the next run (the 10-million-row CSV is ~400 MiB).

    python benchmarks/bench_predict.py [--rows 1000000] [--chunk-rows 100000] [--trees 100] [--repeat 1]
                                       [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
sys.path.insert(0, str(ROOT))

# Each child does the whole job (imports, model load, read, predict, write) and prints
# one JSON line last: its CPU seconds (user + sys, all threads) and its peak RSS.
# The parent times its wall clock. On a shared machine CPU time is the steadier number.
USAGE = """
u = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cpu_s": u.ru_utime + u.ru_stime, "maxrss_mb": u.ru_maxrss / 1024}))
"""
NBOPS_CHILD = (
    """
import json, resource, sys
from nbops.cli.main import main
if main(sys.argv[1:]) != 0:
    sys.exit(1)
"""
    + USAGE
)

PANDAS_CHILD = (
    """
import json, pickle, resource, sys
import pandas as pd
model_path, csv, out, chunk, with_proba = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "proba"
with open(model_path, "rb") as f:
    model = pickle.load(f)
for i, frame in enumerate(pd.read_csv(csv, chunksize=chunk)):
    part = pd.DataFrame({"prediction": model.predict(frame)})
    if with_proba:
        proba = model.predict_proba(frame)
        part = part.assign(**{f"proba_{c}": proba[:, j] for j, c in enumerate(model.classes_)})
    part.to_parquet(f"{out}/part-{i:05d}.parquet", index=False)
"""
    + USAGE
)


SIDES = {
    "nbops": "nbops predict (prediction + proba_*)",
    "pandas": "pandas loop: predict (the issue's baseline)",
    "pandas+proba": "pandas loop: predict + predict_proba (same out)",
}


def cli(*args: str, cwd: Path) -> str:
    result = subprocess.run([PY, "-m", "nbops.cli.main", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"failed: nbops {' '.join(args)}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.stdout


def train(work: Path, trees: int) -> tuple[Path, dict]:
    """Run the churn example, register and promote its model; the store and the signature."""
    shutil.copy(ROOT / "example_notebooks" / "churn.ipynb", work / "churn.ipynb")
    store = work / "store"
    cli("run", str(work / "churn.ipynb"), "-p", f"n_estimators={trees}", "--store", str(store), cwd=work)
    cli(
        "models",
        "register",
        "latest",
        "--stage",
        "train",
        "--var",
        "model",
        "--name",
        "churn",
        "--store",
        str(store),
        "--notebook",
        str(work / "churn.ipynb"),
        cwd=work,
    )
    cli("models", "promote", "churn", "1", "--alias", "production", "--store", str(store), cwd=work)
    shown = json.loads(cli("models", "show", "churn@production", "--store", str(store), "--json", cwd=work))
    return store, shown["signature"]


def write_csv(path: Path, rows: int, signature: dict, seed: int = 11) -> None:
    """Churn customers as the example makes them, one-hot encoded in the signature's column order."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [c["name"] for c in signature["columns"]]
    rng = np.random.default_rng(seed)
    writer = None
    for start in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - start)
        tenure = rng.integers(1, 72, n)
        fee = rng.normal(45, 15, n).round(2)
        cols = {"tenure_months": tenure, "monthly_fee": fee, "support_calls": rng.poisson(1.5, n), "fee_per_month_of_tenure": fee / tenure}
        plan = rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2])
        region = rng.choice(["north", "south", "east", "west"], n)
        for name in names:
            if name.startswith("plan_"):
                cols[name] = (plan == name[5:]).astype(float)
            elif name.startswith("region_"):
                cols[name] = (region == name[7:]).astype(float)
        table = pa.table({name: cols[name] for name in names})
        if writer is None:
            writer = pacsv.CSVWriter(str(path), table.schema)
        writer.write_table(table)
    writer.close()


def child(code: str, args: list[str], cwd: Path) -> dict:
    started = time.perf_counter()
    result = subprocess.run([PY, "-c", code, *args], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {args}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1]) | {"wall": wall}


def same_predictions(nbops_out: Path, pandas_dir: Path, with_proba: bool) -> bool:
    import numpy as np
    import pyarrow.parquet as pq

    columns = ["prediction", "proba_1"] if with_proba else ["prediction"]
    ours = pq.read_table(nbops_out, columns=columns)
    theirs = pq.read_table(sorted(pandas_dir.glob("part-*.parquet")), columns=columns)
    return all(np.array_equal(ours.column(c).to_numpy(), theirs.column(c).to_numpy()) for c in columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="CSV rows (the issue's size: 10000000)")
    parser.add_argument("--chunk-rows", type=int, default=100_000, help="rows per chunk, for both")
    parser.add_argument("--trees", type=int, default=100, help="n_estimators of the churn model (the example's default: 100)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, interleaved; the best (least CPU) is kept")
    parser.add_argument("--work", type=Path, help="keep the model and CSV in this folder and reuse them next time (default: a temp folder, removed)")
    a = parser.parse_args()

    work = a.work or Path(tempfile.mkdtemp(prefix="nbops-bench-predict-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        store, signature = train(work, a.trees) if not (work / "model.pkl").exists() else (work / "store", json.loads((work / "signature.json").read_text()))
        if not (work / "model.pkl").exists():
            print(f"trained and registered churn ({a.trees} trees) in {time.perf_counter() - t:.1f}s", flush=True)
            import pickle

            from nbops import models

            (work / "signature.json").write_text(json.dumps(signature))
            with open(work / "model.pkl", "wb") as f:
                pickle.dump(models.load("churn@production", store=store), f)
        csv = work / f"data-{a.rows}.csv"
        if not csv.exists():
            t = time.perf_counter()
            write_csv(csv, a.rows, signature)
            print(f"wrote {a.rows:,} rows ({csv.stat().st_size / 2**20:,.0f} MiB CSV) in {time.perf_counter() - t:.1f}s", flush=True)

        out, parts = work / "out.parquet", work / "parts"
        results: dict[str, list[dict]] = {name: [] for name in SIDES}
        agree = True
        for _ in range(a.repeat):  # interleaved: drift on a shared machine hits all alike
            args = ["predict", "churn@production", str(csv), "-o", str(out), "--chunk-rows", str(a.chunk_rows), "--store", str(store), "--json"]
            results["nbops"].append(child(NBOPS_CHILD, args, work))
            for name, mode in (("pandas", "predict"), ("pandas+proba", "proba")):
                shutil.rmtree(parts, ignore_errors=True)
                parts.mkdir()
                results[name].append(child(PANDAS_CHILD, [str(work / "model.pkl"), str(csv), str(parts), str(a.chunk_rows), mode], work))
                agree = agree and same_predictions(out, parts, with_proba=mode == "proba")
        best = {name: min(runs, key=lambda r: r["cpu_s"]) for name, runs in results.items()}
        walls = {name: min(r["wall"] for r in runs) for name, runs in results.items()}

        print(f"\nbatch prediction of {a.rows:,} CSV rows, chunks of {a.chunk_rows:,} rows, churn model ({a.trees} trees), "
              f"{os.cpu_count()} CPUs, best of {a.repeat}")  # fmt: skip
        print("each a whole process: imports, model load, read the CSV, predict, write Parquet")
        print(f"{'':46} {'wall s':>8} {'CPU s':>8} {'rows/s':>9} {'peak RSS':>9} {'wall ratio':>11} {'CPU ratio':>10}")
        for name, label in SIDES.items():
            r = best[name]
            print(f"{label:46} {walls[name]:8.1f} {r['cpu_s']:8.1f} {a.rows / walls[name]:9,.0f} {r['maxrss_mb']:7.0f}MB "
                  f"{walls[name] / walls['nbops']:10.2f}x {r['cpu_s'] / best['nbops']['cpu_s']:9.2f}x")  # fmt: skip
        print("ratio: the baseline's time / nbops's (goal >= 1x); peak RSS goal <= 1024 MB")
        print(f"predictions (and probabilities) identical row for row: {agree}")
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
