"""``nbops.log_metric`` throughput from inside a real stage, into SQLite and PostgreSQL.

A tiny notebook whose stage logs N metrics in a loop runs through ``nbops run``
(``nbops.api.run``: a real kernel). The stage times its own loop, then, in the
same kernel, the alternatives a user would write without nbops:

- ``json.dumps`` lines appended to one open file (the cheapest possible log);
- one INSERT per metric, committed, with the plain driver (``sqlite3`` into a
  SQLite file / ``psycopg`` autocommit into the same PostgreSQL server): a
  "log to the database" tracker without batching.

The end-to-end ingest is the driver's part after the kernel finished: from the
stage's end to the moment its record (metrics included) is in the store (the
scheduler's "succeeded" progress event); ``ingest, metrics only`` times just
``StageIngest.records("metrics")`` + ``put_stage`` of that list again, in this process.

Goal: >= 20,000 metrics/s into SQLite, >= 10,000/s into PostgreSQL (the stage's
loop plus the ingest).

    python benchmarks/bench_metrics.py [--n 100000] [--backends sqlite,postgresql] [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

GOALS = {"sqlite": 20_000, "postgresql": 10_000}

STAGE = """\
import json, time
import nbops

t = time.perf_counter()
for i in range(n):
    nbops.log_metric("loss", 1.0 / (i + 1), step=i)
loop_s = time.perf_counter() - t

t = time.perf_counter()
with open(json_path, "a") as f:
    for i in range(n):
        f.write(json.dumps({"name": "loss", "value": 1.0 / (i + 1), "step": i}) + "\\n")
json_s = time.perf_counter() - t

sql_n = min(n, sql_cap)
if sql_url.startswith("postgresql://"):
    import psycopg
    conn = psycopg.connect(sql_url, autocommit=True)
    conn.execute("CREATE TABLE IF NOT EXISTS bench_metrics (run text, name text, value double precision, step integer)")
    mark = "%s"
else:
    import sqlite3
    conn = sqlite3.connect(sql_url, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS bench_metrics (run text, name text, value real, step integer)")
    mark = "?"
insert = f"INSERT INTO bench_metrics VALUES ({mark}, {mark}, {mark}, {mark})"
t = time.perf_counter()
for i in range(sql_n):
    conn.execute(insert, ("r", "loss", 1.0 / (i + 1), i))
sql_s = time.perf_counter() - t
conn.close()
"""


def notebook() -> dict:
    def cell(cid: str, source: str, tags: list[str]) -> dict:
        return {"cell_type": "code", "id": cid, "metadata": {"tags": tags}, "source": source, "outputs": [], "execution_count": None}

    return {
        "cells": [
            cell("p", "n = 1000\njson_path = 'metrics.jsonl'\nsql_url = 'metrics.db'\nsql_cap = 20000", ["parameters"]),
            cell("a", STAGE, ["stage:log"]),
        ],
        "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def one_run(nb: Path, store: str, n: int, sql_url: str, sql_cap: int, work: Path) -> dict:
    from nbops import api
    from nbops.execute.ingest import StageIngest
    from nbops.history import run_to_json

    done_at = {}

    def progress(event, stage, info=None):
        if event == "succeeded":
            done_at[stage] = time.time()

    json_path = work / f"plain-{time.time_ns()}.jsonl"
    t = time.perf_counter()
    run = api.run(nb, {"n": n, "json_path": str(json_path), "sql_url": sql_url, "sql_cap": sql_cap}, store=store, no_cache=True, progress=progress)
    wall = time.perf_counter() - t
    if run["status"] != "succeeded":
        raise SystemExit(f"the run failed: {json.dumps(run['stages'][0].get('error'), indent=1)[:3000]}")
    rs = api.open_store(store, nb)
    raw = rs.get_run(run["id"])
    stage = raw["stages"][0]
    assert len(stage["metrics"]) == n, (len(stage["metrics"]), n)
    sc = stage["scalars"]
    # The metrics alone through the driver's path again: read the stage's records, write the stage row.
    out_dir = work / "reingest" / "log"
    (out_dir / "_nbops").mkdir(parents=True, exist_ok=True)
    (out_dir / "_nbops" / "metrics.jsonl").write_text("".join(json.dumps(m, sort_keys=True) + "\n" for m in stage["metrics"]))
    t = time.perf_counter()
    metrics = StageIngest(rs, out_dir, []).records("metrics")
    rs.put_stage(run["id"], "log", 0, status="succeeded", metrics=metrics)
    reingest = time.perf_counter() - t
    t = time.perf_counter()
    run_to_json(rs.get_run(run["id"]))
    show = time.perf_counter() - t
    shutil.rmtree(work / "reingest")
    json_path.unlink(missing_ok=True)
    return {
        "loop": sc["loop_s"],
        "json": sc["json_s"],
        "sql": sc["sql_s"] * n / min(n, sql_cap),  # per-metric INSERTs, capped, scaled to n
        "ingest": done_at["log"] - stage["ended_at"],
        "reingest": reingest,
        "show": show,
        "wall": wall,
    }


def bench(kind: str, store: str, sql_url: str, n: int, repeat: int, sql_cap: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"nbops-bench-metrics-{kind}-"))
    try:
        nb = work / "metrics.ipynb"
        nb.write_text(json.dumps(notebook()))
        store = store if kind == "postgresql" else str(work / "store")
        sql_url = sql_url if kind == "postgresql" else str(work / "plain.db")
        one_run(nb, store, 100, sql_url, 100, work)  # warm: kernel spec, imports, store creation
        runs = [one_run(nb, store, n, sql_url, sql_cap, work) for _ in range(repeat)]
        return {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000, help="metrics the stage logs")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sql-cap", type=int, default=20_000, help="at most this many per-metric INSERTs (the rate is scaled to --n)")
    parser.add_argument("--quick", action="store_true", help="5,000 metrics, 1 repeat")
    args = parser.parse_args()
    n, repeat = (5000, 1) if args.quick else (args.n, args.repeat)
    backends = args.backends.split(",")

    import _servers

    results = []
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(_servers.postgres()) if "postgresql" in backends else None
        for kind in backends:
            store = pg.new_database() if kind == "postgresql" else ""
            sql_url = pg.new_database() if kind == "postgresql" else ""
            results.append((kind, bench(kind, store, sql_url, n, repeat, args.sql_cap)))
            print(f"{kind}: done", flush=True)

    print(f"\n{n:,} metrics logged in one stage, median of {repeat} runs")
    print(
        f"{'backend':<11} {'in-stage/s':>11} {'ingest s':>9} {'end-to-end/s':>13} {'goal':>7} {'json lines/s':>13} {'INSERT each/s':>14} {'e2e/json':>9} {'e2e/INSERT':>11}"
    )
    for kind, r in results:
        e2e = n / (r["loop"] + r["ingest"])
        ok = "ok" if e2e >= GOALS[kind] else "MISSED"
        print(
            f"{kind:<11} {n / r['loop']:>11,.0f} {r['ingest']:>9.3f} {e2e:>13,.0f} {ok:>7} {n / r['json']:>13,.0f} {n / r['sql']:>14,.0f}"
            f" {e2e / (n / r['json']):>9.2f} {e2e / (n / r['sql']):>11.2f}"
        )
    for kind, r in results:
        print(
            f"{kind}: ingest, metrics only (read records + put_stage) {r['reingest']:.3f} s = {n / r['reingest']:,.0f}/s;"
            f" runs show of that run {r['show'] * 1000:.0f} ms; whole run {r['wall']:.1f} s"
        )
    print("in-stage = the stage's log_metric loop; ingest = stage end -> its record stored (driver); end-to-end = n / (loop + ingest);")
    print("json lines = json.dumps lines to one open file; INSERT each = one committed INSERT per metric (sqlite3 / psycopg autocommit).")
    print(f"goals: end-to-end >= {GOALS['sqlite']:,}/s (sqlite), >= {GOALS['postgresql']:,}/s (postgresql)")


if __name__ == "__main__":
    main()
