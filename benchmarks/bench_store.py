"""Listing and showing runs in a big store, SQLite and PostgreSQL, side by side with the naive alternatives.

For each size (10,000 and 100,000 runs, each with 3 stages of realistic JSON:
outputs, a metrics list, key_parts, deps) and each backend, times:

- ``RunStore.list_runs(limit=50)`` on an open store (the newest 50) and
  ``history.list_runs`` (what ``nbops runs ls`` calls: opens the store, lists,
  shapes the JSON), against the same two queries in plain ``sqlite3`` /
  ``psycopg`` and against a folder of one JSON file per run (the newest 50 by
  mtime: what a user without a store would have);
- ``RunStore.get_run`` (``nbops runs show``) of random runs, against the same
  in plain SQL and against reading one JSON file;
- once each, the CLI process end to end (``nbops runs ls`` / ``runs show``), for context.

Goal: under 50 ms for list and show at 100,000 runs. Records are bulk-loaded
with multi-row INSERTs of the ``nbops.store.schema`` tables (PostgreSQL then
ANALYZEd, as autovacuum would); times are medians of ``--repeat`` calls.

    python benchmarks/bench_store.py [--sizes 10000,100000] [--backends sqlite,postgresql] [--repeat 15] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from nbops.store import RunStore  # noqa: E402
from nbops.store.schema import JSON_RUN, JSON_STAGE, runs, stages  # noqa: E402

GOAL_MS = 50.0
STAGES = ("load", "train", "evaluate")
NOTEBOOKS = [f"/home/team/project/notebooks/model_{i}.ipynb" for i in range(8)]
USERS = ["ana", "bo", "chen", "dita", "eli"]
LIST_SQL = "SELECT * FROM runs ORDER BY started_at DESC, id DESC LIMIT 50"
STAGES_SQL = "SELECT run_id, name, status, metrics, scalars FROM stages WHERE run_id IN ({}) ORDER BY position"
SHOW_RUN_SQL = "SELECT * FROM runs WHERE id = {}"
SHOW_STAGES_SQL = "SELECT * FROM stages WHERE run_id = {} ORDER BY position"


def sha(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def fake_run(i: int, t0: float, rng: random.Random) -> tuple[dict, list[dict]]:
    """Run ``i`` (started ``i`` minutes after t0) as the store keeps it: JSON columns as text."""
    started = t0 + i * 60 + rng.random()
    run_id = datetime.fromtimestamp(started, timezone.utc).strftime("%Y%m%d-%H%M%S-") + f"{i:06x}"[-6:]
    status = "failed" if rng.random() < 0.08 else "succeeded"
    notebook = NOTEBOOKS[i % len(NOTEBOOKS)]
    params = {"lr": round(rng.uniform(1e-4, 1e-1), 5), "epochs": rng.choice([5, 10, 20]), "model": rng.choice(["rf", "gbm", "mlp"]), "seed": i}
    run = {
        "id": run_id, "notebook": notebook, "pipeline_dir": f"/home/team/project/.nbops/pipelines/{sha(notebook)[:16]}",
        "pipeline_sha256": sha("p", i % 50), "notebook_sha256": sha("n", i % 50), "status": status, "started_at": started,
        "ended_at": started + 40 + rng.random() * 30, "params": params,
        "env": {"python": "3.11.9", "platform": "Linux-6.8-x86_64", "nbops": "0.9.0", "packages_sha256": sha("pk", i % 20)},
        "git": {"commit": sha("g", i % 300)[:40], "dirty": rng.random() < 0.3, "branch": "main"},
        "executor": json.dumps({"name": "local", "jobs": 2}), "kind": "run", "host": "ws-17", "pid": 4000 + i % 30000,
        "pid_start": str(1000000 + i), "heartbeat": started + 60, "error": None, "report": None, "user": USERS[i % len(USERS)],
    }  # fmt: skip
    stage_rows = []
    at = started
    for pos, name in enumerate(STAGES):
        ok = status == "succeeded" or pos < 2
        code = sha("code", name, i % 40)
        outputs = {
            var: {"file": f"{var}.parquet", "serializer": "parquet", "type": "pandas.core.frame.DataFrame", "sha256": sha(i, name, var), "bytes": rng.randint(10**5, 10**8)}
            for var in (["df", "features"] if name == "load" else ["model"] if name == "train" else ["report"])
        }  # fmt: skip
        metrics = [{"name": m, "value": rng.random(), "step": None} for m in ("accuracy", "f1", "auc", "loss")] if name != "load" else []
        metrics += [{"name": "loss", "value": rng.random(), "step": s} for s in range(8 if name == "train" else 0)]
        key_parts = {
            "v": 3, "code": code, "params": {k: params[k] for k in ("lr", "epochs", "model") if name != "load"},
            "inputs": {} if pos == 0 else {"df": sha(i, STAGES[pos - 1], "df")}, "producers": {} if pos == 0 else {"df": STAGES[pos - 1]},
            "env": {"python": "3.11.9", "packages": sha("pk", i % 20)[:16]}, "metrics": [],
            "cells": [{"id": f"c{pos}{k}", "sha256": sha(code, k)[:16]} for k in range(4)],
        }  # fmt: skip
        deps = [
            {"kind": "file", "path": f"data/raw_{k}.csv", "sha256": sha("d", k, i % 100), "bytes": 123456 + k, "mtime_ns": 1700000000000000000 + k}
            for k in range(2 if pos == 0 else 0)
        ] + [{"kind": "module", "name": "helpers", "sha256": sha("m", i % 10)}]
        end = at + 10 + rng.random() * 10
        stage_rows.append({
            "run_id": run_id, "name": name, "position": pos, "status": "succeeded" if ok else "failed", "started_at": at, "ended_at": end,
            "cache_key": sha("key", code, i % 500), "cached_from": None, "notebook_sha256": sha("nb", i, name), "outputs": outputs if ok else {},
            "scalars": {"rows": rng.randint(1000, 10**6)} if name == "load" else {}, "metrics": metrics, "checks": [{"name": "no_nulls", "passed": True}],
            "inputs": [], "artifacts": [], "error": None if ok else {"ename": "ValueError", "evalue": "bad split", "traceback": "Traceback ...\n" * 20},
            "worker": {"host": "ws-17", "pid": 5000 + i % 1000, "kernel": "python3"}, "attempts": 1, "reason": {"why": "code changed", "cells": [2]},
            "key_parts": key_parts, "deps": deps, "unusable": None,
        })  # fmt: skip
        at = end
    return run, stage_rows


def as_rows(record: dict, json_cols: tuple[str, ...]) -> dict:
    return {k: json.dumps(v, sort_keys=True) if k in json_cols and v is not None else v for k, v in record.items()}


def generate(n: int, folder: Path) -> tuple[list[dict], list[dict]]:
    """(run rows, stage rows) for the tables; writes the same runs into ``folder``, one JSON file each
    (with its stages, mtime = its start) for the naive alternative."""
    rng = random.Random(42)
    t0 = time.time() - n * 60 - 3600
    run_rows, stage_rows = [], []
    folder.mkdir(parents=True)
    for i in range(n):
        run, st = fake_run(i, t0, rng)
        run_rows.append(as_rows(run, JSON_RUN))
        stage_rows.extend(as_rows(s, JSON_STAGE) for s in st)
        path = folder / f"{run['id']}.json"
        path.write_text(json.dumps({**run, "stages": st}))
        os.utime(path, (run["started_at"], run["started_at"]))
    return run_rows, stage_rows


def bulk_load(store: RunStore, run_rows: list[dict], stage_rows: list[dict]) -> None:
    with store.db.write() as c:
        for chunk in range(0, len(run_rows), 2000):
            c.execute(runs.insert(), run_rows[chunk : chunk + 2000])
        for chunk in range(0, len(stage_rows), 2000):
            c.execute(stages.insert(), stage_rows[chunk : chunk + 2000])
    if store.is_database:
        with store.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("VACUUM ANALYZE runs")
            c.exec_driver_sql("VACUUM ANALYZE stages")


def folder_list(folder: Path) -> list[dict]:
    """The naive 'newest 50': stat every file, keep the 50 newest by mtime, read them."""
    with os.scandir(folder) as it:
        newest = heapq.nlargest(50, ((e.stat().st_mtime, e.path) for e in it))
    return [json.loads(Path(p).read_text()) for _, p in newest]


def folder_show(folder: Path, run_id: str) -> dict:
    return json.loads((folder / f"{run_id}.json").read_text())


def median_ms(fn, repeat: int, args_for=None) -> float:
    fn(*(args_for(0) if args_for else ()))  # warm: caches, connections, imports
    times = []
    for k in range(repeat):
        args = args_for(k) if args_for else ()
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def raw_sql(kind: str, url: str):
    """(list, show) with the same queries in the plain driver, JSON columns decoded as nbops does."""
    if kind == "sqlite":
        import sqlite3

        conn = sqlite3.connect(url)
        conn.row_factory = sqlite3.Row
        mark = "?"
    else:
        import psycopg
        from psycopg.rows import dict_row

        conn = psycopg.connect(url, autocommit=True, row_factory=dict_row)
        mark = "%s"

    def decode(row, cols):
        d = dict(row)
        for k in cols:
            if isinstance(d.get(k), str):
                d[k] = json.loads(d[k])
        return d

    def list_newest():
        rows = [decode(r, JSON_RUN) for r in conn.execute(LIST_SQL).fetchall()]
        ids = [r["id"] for r in rows]
        st = conn.execute(STAGES_SQL.format(",".join([mark] * len(ids))), ids).fetchall()
        return rows, [decode(s, JSON_STAGE) for s in st]

    def show(run_id):
        run = decode(conn.execute(SHOW_RUN_SQL.format(mark), (run_id,)).fetchone(), JSON_RUN)
        run["stages"] = [decode(s, JSON_STAGE) for s in conn.execute(SHOW_STAGES_SQL.format(mark), (run_id,)).fetchall()]
        return run

    return list_newest, show, conn


def explain(store: RunStore) -> list[str]:
    """The plans of the listing's queries (to see a missing index)."""
    run_id = "x"
    lines = []
    with store.db.read() as c:
        if store.is_database:
            q = [f"EXPLAIN {LIST_SQL}", "EXPLAIN SELECT id FROM runs WHERE status = 'running'", f"EXPLAIN {SHOW_STAGES_SQL.format(repr(run_id))}"]
        else:
            q = [
                f"EXPLAIN QUERY PLAN {LIST_SQL}",
                "EXPLAIN QUERY PLAN SELECT id FROM runs WHERE status = 'running'",
                f"EXPLAIN QUERY PLAN {SHOW_STAGES_SQL.format(repr(run_id))}",
            ]
        for sql in q:
            lines.append(sql.split(" FROM ")[0].replace("EXPLAIN QUERY PLAN ", "").replace("EXPLAIN ", "") + " FROM " + sql.split(" FROM ")[1][:60])
            lines += ["    " + " ".join(str(x) for x in row[-1:]) for row in c.exec_driver_sql(sql)]
    return lines


def cli_ms(args: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nbops.cli.main", *args], cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"failed: nbops {' '.join(args)}\n{proc.stderr[-2000:]}")
    return elapsed * 1000


def bench_backend(kind: str, url: str, work: Path, data, folder: Path, repeat: int) -> dict:
    from nbops import history

    run_rows, stage_rows = data
    t = time.perf_counter()
    store = RunStore(url, workspace=work / "ws") if kind == "postgresql" else RunStore(work / f"store-{kind}")
    bulk_load(store, run_rows, stage_rows)
    load_s = time.perf_counter() - t
    store_arg = url if kind == "postgresql" else str(work / f"store-{kind}")
    raw_list, raw_show, conn = raw_sql(kind, url if kind == "postgresql" else str(work / f"store-{kind}" / "runs.db"))
    rng = random.Random(7)
    ids = [r["id"] for r in rng.sample(run_rows, min(len(run_rows), repeat + 1))]
    assert len(store.list_runs(limit=50)) == 50 and store.list_runs(limit=50)[0]["id"] == run_rows[-1]["id"]
    res = {
        "load_s": load_s,
        "list": median_ms(lambda: store.list_runs(limit=50), repeat),
        "list_cli_path": median_ms(lambda: history.list_runs(store=store_arg, limit=50), repeat),
        "list_raw": median_ms(raw_list, repeat),
        "list_folder": median_ms(lambda: folder_list(folder), repeat),
        "show": median_ms(store.get_run, repeat, lambda k: (ids[k],)),
        "show_cli_path": median_ms(lambda rid: history.get_run(rid, store=store_arg), repeat, lambda k: (ids[k],)),
        "show_raw": median_ms(raw_show, repeat, lambda k: (ids[k],)),
        "show_folder": median_ms(lambda rid: folder_show(folder, rid), repeat, lambda k: (ids[k],)),
        "cli_ls": cli_ms(["runs", "ls", "--store", store_arg, "--limit", "50"], work),
        "cli_show": cli_ms(["runs", "show", ids[0], "--store", store_arg], work),
        "explain": explain(store),
    }
    conn.close()
    store.db.engine.dispose()
    return res


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="1,000 and 5,000 runs, 7 repeats")
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    args = parser.parse_args()
    sizes = [1000, 5000] if args.quick else [int(s) for s in args.sizes.split(",")]
    repeat = 7 if args.quick else args.repeat
    backends = args.backends.split(",")

    import contextlib

    import _servers

    results = []
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(_servers.postgres()) if "postgresql" in backends else None
        for n in sizes:
            work = Path(tempfile.mkdtemp(prefix="nbops-bench-store-"))
            try:
                t = time.perf_counter()
                folder = work / "json-runs"
                data = generate(n, folder)
                print(f"\n{n:,} runs ({len(data[1]):,} stages): generated (and the JSON folder written) in {time.perf_counter() - t:.1f} s", flush=True)
                for kind in backends:
                    url = pg.new_database() if kind == "postgresql" else "sqlite"
                    r = bench_backend(kind, url, work, data, folder, repeat)
                    results.append((n, kind, r))
                    print(f"  {kind}: loaded in {r['load_s']:.1f} s", flush=True)
                    if args.explain:
                        print("\n".join("    " + line for line in r["explain"]))
            finally:
                shutil.rmtree(work, ignore_errors=True)

    print(
        f"\n{'runs':>8} {'backend':<11} {'what':<5} {'RunStore':>9} {'CLI path':>9} {'raw SQL':>8} {'JSON dir':>9} {'/raw':>6} {'/dir':>6} {'CLI proc':>9}  goal<{GOAL_MS:.0f}"
    )
    for n, kind, r in results:
        for what in ("list", "show"):
            api_ms, path_ms, raw_ms, dir_ms = r[what], r[f"{what}_cli_path"], r[f"{what}_raw"], r[f"{what}_folder"]
            cli = r["cli_ls" if what == "list" else "cli_show"]
            ok = "ok" if max(api_ms, path_ms) < GOAL_MS else "MISSED"
            print(
                f"{n:>8,} {kind:<11} {what:<5} {api_ms:>9.2f} {path_ms:>9.2f} {raw_ms:>8.2f} {dir_ms:>9.2f} {api_ms / raw_ms:>6.2f} {api_ms / dir_ms:>6.2f} {cli:>9.0f}  {ok}"
            )
    print("milliseconds, median. RunStore = RunStore.list_runs(limit=50) / get_run on an open store; CLI path = nbops.history.list_runs / get_run")
    print("(what 'nbops runs ls/show' calls: opens the store, then shapes JSON); raw SQL = the same queries in plain sqlite3/psycopg;")
    print("JSON dir = one JSON file per run, newest 50 by mtime / one file read; /raw, /dir = RunStore over those; CLI proc = one whole")
    print("'nbops runs ls|show' process (interpreter start and imports included), once.")


if __name__ == "__main__":
    main()
