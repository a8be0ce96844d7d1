"""A damaged object in a bucket is never loaded: the stage that made it runs again.

The local store hard-links a cached output and re-hashes it before a stage loads
it; an object store re-hashes what it downloads. Either way a cache hit whose
bytes changed in the bucket (same size: the cheap check cannot tell) is recomputed
by the stage that made it, and the run succeeds.
"""

from __future__ import annotations

import json

import pytest

from nbops.store import open_store
from tests.conftest import build_notebook, run_cli

CELLS = [
    ("rows = list(range(1000))", ["stage:load"]),
    ("total = sum(rows)", ["stage:total"]),
]


@pytest.mark.parametrize("store_backend", ["pg-s3"], indirect=True)
def test_an_output_damaged_in_the_bucket_is_recomputed(store_backend, s3, tmp_path):
    nb = build_notebook(tmp_path, CELLS)
    first = run_cli("run", str(nb), "--json", cwd=tmp_path, env=store_backend.env)
    assert first.returncode == 0, first.stderr
    store = open_store(store_backend.store, nb, objects=store_backend.objects, create=False)
    run = store.get_run(json.loads(first.stdout)["id"])
    meta = run["stages"][0]["outputs"]["rows"]
    key = store.objects.key(meta["sha256"])
    bucket, _, path = key.partition("/")
    body = s3.client().get_object(Bucket=bucket, Key=path)["Body"].read()
    s3.client().put_object(Bucket=bucket, Key=path, Body=bytes([body[0] ^ 0xFF]) + body[1:])  # same size, other bytes

    again = run_cli("run", str(nb), "--json", cwd=tmp_path, env=store_backend.env)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert [(s["name"], s["status"]) for s in second["stages"]] == [("load", "succeeded"), ("total", "cached")]
    assert store.objects.verify(meta["sha256"])  # the recomputed stage stored the right bytes again
