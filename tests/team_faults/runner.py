"""The processes of the concurrency test (``test_concurrency.py``), each its own OS process.

``python -m tests.team_faults.runner drive STORE OBJECTS WORKSPACE VARIANT ROUNDS`` records
ROUNDS runs of a two-stage pipeline (load -> train) through ``RunStore``, in the order a real
run writes: the run, every stage pending, then per stage a cache lookup and either reuse
(materialize the recorded objects, a ``cached`` row) or "compute" (a ``running`` row, the
output and the executed notebook stored as objects, then the ``succeeded`` row), then the
run's status. Runners of one VARIANT run the same notebook: the same cache keys and the
same output bytes. Prints the run ids as JSON.

``python -m tests.team_faults.runner read STORE OBJECTS STOP_FILE`` lists the runs in a loop
until STOP_FILE exists and fails (exit 1) on anything a reader must never see: a succeeded
run with a stage that is not done or has no outputs, or an interrupted run. Prints how many
listings it made.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

from nbops.runtime.files import sha256_file
from nbops.status import CACHED, DONE_OK, INTERRUPTED, PENDING, RUNNING, SUCCEEDED
from nbops.store import RunStore, new_run_id

STAGES = ("load", "train")
# The outputs each stage records: the driven runs' stages, and the real notebook's (make -> count;
# count's ``n`` is used by no stage, so it is not stored).
OUTPUTS = {"load": {"value"}, "train": {"value"}, "make": {"x"}, "count": set()}


def cache_key(variant: str, stage: str) -> str:
    return hashlib.sha256(f"concurrency:{variant}:{stage}".encode()).hexdigest()


def output_bytes(variant: str, stage: str) -> bytes:
    """What a stage of a variant computes: the same bytes in every runner (200 KB)."""
    return (f"{variant}/{stage}/".encode() * 25_000)[:200_000]


def drive(store_url: str, objects: str, workspace: str, variant: str, rounds: int) -> list[str]:
    store = RunStore(store_url, objects=objects, workspace=workspace)  # 16 of these at once on a fresh database: one migrates
    ids = []
    for _ in range(rounds):
        run_id = new_run_id()
        store.create_run(run_id, notebook=f"/team/{variant}.ipynb", params={"variant": variant}, kind="run")
        for i, stage in enumerate(STAGES):
            store.put_stage(run_id, stage, i, status=PENDING)
        folder = store.run_dir(run_id)
        folder.mkdir(parents=True)
        for i, stage in enumerate(STAGES):
            key = cache_key(variant, stage)
            found = store.find_cached(key)
            now = time.time()
            if found:
                record = found[0]
                meta = record["outputs"]["value"]
                dest = folder / stage / meta["file"]
                store.objects.materialize(meta["sha256"], dest, size=meta["bytes"])
                if sha256_file(dest) != meta["sha256"]:
                    raise AssertionError(f"the cached output of {stage} from run {record['run_id']} does not hash to its name")
                store.put_stage(
                    run_id, stage, i, status=CACHED, started_at=now, ended_at=now, cache_key=key, cached_from=record.get("cached_from") or record["run_id"],
                    notebook_sha256=record["notebook_sha256"], outputs=record["outputs"],
                )  # fmt: skip
                continue
            store.put_stage(run_id, stage, i, status=RUNNING, started_at=now, cache_key=key)
            out = folder / stage / "value.pkl"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(output_bytes(variant, stage))
            notebook = folder / f"{stage}.ipynb"
            notebook.write_text(json.dumps({"cells": [], "metadata": {"run": run_id, "stage": stage}}))  # differs per run, as a real one does
            outputs = {"value": {"file": "value.pkl", "serializer": "pickle", "bytes": out.stat().st_size, "sha256": store.objects.put_file(out, move=True)}}
            notebook_sha = store.objects.put_file(notebook, move=True)
            store.put_stage(
                run_id, stage, i, status=SUCCEEDED, started_at=now, ended_at=time.time(), cache_key=key,
                notebook_sha256=notebook_sha, outputs=outputs, scalars={"n": 1},
            )  # fmt: skip
        store.update_run(run_id, status=SUCCEEDED, ended_at=time.time())
        ids.append(run_id)
    return ids


def read(store_url: str, objects: str, stop_file: str) -> int:
    store = RunStore(store_url, objects=objects, create=False)
    listings = 0
    checked: set[str] = set()  # a succeeded run is read in full once: its records never change again
    while True:
        stop = Path(stop_file).exists()  # one more listing after the last runner is done
        for run in store.list_runs(limit=1000):
            if run["status"] == INTERRUPTED:
                raise AssertionError(f"run {run['id']} was marked interrupted while its runner was alive")
            if run["status"] == SUCCEEDED:
                bad = [s["name"] for s in run["stages"] if s["status"] not in DONE_OK]
                if bad or len(run["stages"]) < 2:
                    raise AssertionError(f"run {run['id']} is succeeded but its stages are {[(s['name'], s['status']) for s in run['stages']]}")
                if run["id"] in checked:
                    continue
                checked.add(run["id"])
                full = store.get_run(run["id"])
                if any(set(s["outputs"]) != OUTPUTS[s["name"]] or not s["notebook_sha256"] for s in full["stages"]):
                    raise AssertionError(f"run {run['id']} is succeeded but a stage has no outputs or notebook: {full['stages']}")
        listings += 1
        if stop:
            return listings


def main(argv: list[str]) -> int:
    if argv[0] == "drive":
        print(json.dumps(drive(argv[1], argv[2], argv[3], argv[4], int(argv[5]))))
    else:
        print(json.dumps({"listings": read(argv[1], argv[2], argv[3])}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
