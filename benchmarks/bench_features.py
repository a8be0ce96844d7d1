"""Point-in-time training sets (issue 16), side by side on the same data.

A feature table of ``--feature-rows`` rows (default 2,000,000; ``--full`` or
``NBOPS_BENCH_FULL=1``: 10,000,000) over ``rows / 20`` entities, four float
columns, random event times over a year, is published into a temporary store.
An entity frame of ``--entity-rows`` rows (default 200,000; full: 1,000,000),
with ids of which ~5% have no history and label times over the year and a
month after, is joined point in time (latest feature row at or before the label
time) by:

- nbops: ``nbops.features.training_set(entities, ["bench:latest"], timestamp="label_time")``,
  DuckDB's ASOF JOIN over the stored Parquet object (it reads the file each time);
- pandas: ``pd.merge_asof(..., by="customer_id", direction="backward")`` on the
  frames already in memory (sorting both by time, and restoring the entity
  order after, counted: merge_asof needs the first and a training set the second);
- Feast (``get_historical_features``, local provider, file offline store) in
  its own venv, ``benchmarks/.venv-feast`` (``python3.11 -m venv
  benchmarks/.venv-feast && benchmarks/.venv-feast/bin/pip install feast``),
  when it is there; skipped with the reason otherwise. ``--feast-timeout``
  bounds it.

The three answers are compared value for value. Prints median seconds over
``--repeat`` runs and the ratio to nbops. Goal: nbops ≥ 3× faster than pandas.

    python benchmarks/bench_features.py [--entity-rows 200000] [--feature-rows 2000000] [--full] [--repeat 3] [--no-feast]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FEAST_PYTHON = ROOT / "benchmarks" / ".venv-feast" / "bin" / "python"
FEATURES = [f"f{i}" for i in range(4)]
YEAR_S = 365 * 86400


def make_data(entity_rows: int, feature_rows: int, seed: int = 11):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    ids = max(1, feature_rows // 20)
    start = pd.Timestamp("2024-01-01")
    table = pd.DataFrame(
        {"customer_id": rng.integers(0, ids, feature_rows), "event_time": start + pd.to_timedelta(rng.integers(0, YEAR_S, feature_rows), unit="s")}
        | {f: rng.normal(size=feature_rows) for f in FEATURES}
    )
    table = table.drop_duplicates(["customer_id", "event_time"], keep="last").reset_index(drop=True)
    entities = pd.DataFrame(
        {
            "customer_id": rng.integers(0, int(ids * 1.05), entity_rows),
            "label_time": start + pd.to_timedelta(rng.integers(0, YEAR_S + 30 * 86400, entity_rows), unit="s"),
            "label": rng.integers(0, 2, entity_rows),
        }
    )
    return table, entities


def run_nbops(entities, near: Path):
    from nbops import features

    return features.training_set(entities, ["bench:latest"], timestamp="label_time", near=near)


def run_pandas(entities, table):
    import pandas as pd

    left = entities.assign(_row=range(len(entities))).sort_values("label_time", kind="stable")
    right = table.sort_values("event_time", kind="stable")
    out = pd.merge_asof(left, right, left_on="label_time", right_on="event_time", by="customer_id", direction="backward", allow_exact_matches=True)
    out = out.sort_values("_row").drop(columns=["_row", "event_time"])
    out.index = entities.index
    return out


def timed(fn, repeat: int):
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


FEAST_SCRIPT = r"""
import json, sys, time, warnings
from datetime import timedelta
from pathlib import Path
warnings.filterwarnings("ignore")
import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Float64

repo, features, repeat = Path(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
(repo / "feature_store.yaml").write_text(
    "project: bench\nprovider: local\nregistry: registry.db\nonline_store:\n  type: sqlite\n  path: online.db\n"
    "offline_store:\n  type: file\nentity_key_serialization_version: 3\n"
)
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
source = FileSource(path=str(repo / "table.parquet"), timestamp_field="event_time")
view = FeatureView(name="bench", entities=[customer], ttl=timedelta(0), schema=[Field(name=f, dtype=Float64) for f in features], source=source)
store = FeatureStore(repo_path=str(repo))
store.apply([customer, view])
entities = pd.read_parquet(repo / "entities.parquet")
times = []
for _ in range(repeat):
    t0 = time.perf_counter()
    out = store.get_historical_features(entity_df=entities, features=[f"bench:{f}" for f in features]).to_df()
    times.append(time.perf_counter() - t0)
out.sort_values("_row").reset_index(drop=True)[["_row", *features]].to_parquet(repo / "out.parquet")
print(json.dumps({"times": times, "feast": __import__("feast").__version__}))
"""


def run_feast(table, entities, repeat: int, timeout: float, work: Path):
    """(median seconds, result frame, version) or (None, None, why not)."""
    if not FEAST_PYTHON.exists():
        return (
            None,
            None,
            f"no Feast venv at {FEAST_PYTHON.parent.parent} (python3.11 -m venv benchmarks/.venv-feast && benchmarks/.venv-feast/bin/pip install feast)",
        )
    repo = work / "feast"
    repo.mkdir()
    # Feast wants timezone-aware UTC times; the instants are the same.
    table.assign(event_time=table["event_time"].dt.tz_localize("UTC")).to_parquet(repo / "table.parquet", index=False)
    entities.assign(label_time=entities["label_time"].dt.tz_localize("UTC"), _row=range(len(entities))).rename(
        columns={"label_time": "event_timestamp"}
    ).to_parquet(repo / "entities.parquet", index=False)
    script = repo / "run_feast.py"
    script.write_text(FEAST_SCRIPT)
    try:
        proc = subprocess.run([str(FEAST_PYTHON), str(script), str(repo), json.dumps(FEATURES), str(repeat)], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, None, f"Feast did not finish within {timeout:.0f} s"
    if proc.returncode != 0:
        return None, None, "Feast failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    import pandas as pd

    info = json.loads(proc.stdout.strip().splitlines()[-1])
    return statistics.median(info["times"]), pd.read_parquet(repo / "out.parquet"), f"feast {info['feast']}"


def same(a, b) -> bool:
    import numpy as np

    return len(a) == len(b) and all(np.array_equal(a[f].to_numpy(), b[f].to_numpy(), equal_nan=True) for f in FEATURES)


def main() -> None:
    full = os.environ.get("NBOPS_BENCH_FULL") == "1"
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entity-rows", type=int, default=None)
    ap.add_argument("--feature-rows", type=int, default=None)
    ap.add_argument("--full", action="store_true", help="1,000,000 entity rows against 10,000,000 feature rows")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-feast", action="store_true")
    ap.add_argument("--feast-timeout", type=float, default=900)
    a = ap.parse_args()
    full = full or a.full
    entity_rows = a.entity_rows or (1_000_000 if full else 200_000)
    feature_rows = a.feature_rows or (10_000_000 if full else 2_000_000)

    from nbops import features

    t0 = time.perf_counter()
    table, entities = make_data(entity_rows, feature_rows)
    print(f"data: {len(entities):,} entity rows × {len(table):,} feature rows ({time.perf_counter() - t0:.1f} s to make)")
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        work = Path(tmp)
        near = work / "bench.ipynb"
        t0 = time.perf_counter()
        v = features.publish(table, "bench", entity="customer_id", timestamp="event_time", near=near)
        print(f"published bench v{v['version']}: {v['bytes'] / 1e6:.0f} MB Parquet ({time.perf_counter() - t0:.1f} s, checks included)")

        rows = []
        run_nbops(entities.head(10), near)  # a warm-up: importing DuckDB is a once-per-process cost
        t_nb, out_nb = timed(lambda: run_nbops(entities, near), a.repeat)
        rows.append(("nbops training_set (DuckDB ASOF)", t_nb, "reads the Parquet object each time"))
        t_pd, out_pd = timed(lambda: run_pandas(entities, table), a.repeat)
        equal_pd = same(out_nb, out_pd)
        rows.append(("pandas merge_asof", t_pd, f"frames in memory; equal to nbops: {equal_pd}"))
        if a.no_feast:
            feast_note = "skipped (--no-feast)"
        else:
            t_fe, out_fe, feast_note = run_feast(table, entities, min(a.repeat, 2), a.feast_timeout, work)
            if t_fe is not None:
                # Feast leaves out entity rows with no feature row at or before their time (nbops: nulls).
                kept = out_nb.iloc[out_fe["_row"].to_numpy()]
                dropped = len(out_nb) - len(out_fe)
                left_out_ok = bool(out_nb.drop(out_nb.index[out_fe["_row"].to_numpy()])[FEATURES[0]].isna().all())
                note = f"equal to nbops on the rows it returns: {same(kept, out_fe)}; left out {dropped:,} rows (all without history: {left_out_ok})"
                rows.append((f"Feast get_historical_features ({feast_note})", t_fe, note))
                feast_note = None
        hits = int(out_nb[FEATURES[0]].notna().sum())

    print(f"{len(entities):,} rows get features; {hits:,} have a row at or before their time ({hits / len(entities):.0%})")
    print(f"{'method':<58} {'median s':>9} {'× nbops':>8}  note")
    for name, secs, note in rows:
        print(f"{name:<58} {secs:>9.2f} {secs / t_nb:>8.1f}  {note}")
    if feast_note:
        print(f"Feast: {feast_note}")
    speedup = t_pd / t_nb
    print(f"goal: nbops ≥ 3× faster than pandas merge_asof — {speedup:.1f}× {'met' if speedup >= 3 else 'NOT met'}; results equal: {equal_pd}")


if __name__ == "__main__":
    main()
