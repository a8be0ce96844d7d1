"""Runs one notebook through ``nbops.api.run`` and writes the run JSON (for tests/ray).

python driver.py NOTEBOOK OUT.json [--executor ray] [--param k=v ...]

The tests run it inside the cluster's network namespace; progress events are
kept in the JSON too ("events"), so a test can see a retry happen.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from nbops import api


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("notebook")
    p.add_argument("out")
    p.add_argument("--executor", default="ray")
    p.add_argument("--param", action="append", default=[])
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--jobs", type=int)
    a = p.parse_args()
    events = []

    def progress(event, stage, info):
        events.append({"t": time.time(), "event": event, "stage": stage, "info": info})
        print(f"{event:10} {stage:12} {json.dumps(info, default=str)[:300]}", flush=True)

    started = time.time()
    result = api.run(a.notebook, executor=a.executor, assignments=a.param, no_cache=a.no_cache, jobs=a.jobs, progress=progress)
    result["events"] = events
    result["wall_s"] = time.time() - started
    result["driver_started"] = started
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1, default=str)
    return 0 if result["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
