"""Ray workers read and write shared objects themselves; the driver records metadata only.

A team store (PostgreSQL records, ``file://`` shared objects) and the namespaced
2-node cluster of conftest.py: ``make`` writes a 6 MB output and a 1 MB logged
artifact, ``use`` (another Ray task) reads the output. While ``use`` runs it
looks into the driver's run folder (same machine) for ``make``'s payload: with
shared objects there is none, and the task result that came back is a few kB.
A local store, for contrast, sends the bytes through the driver.

Why not the S3 server of tests/services.py: moto listens on the host's
127.0.0.1, and the cluster's network namespace has only its own loopback (no
veth); the Ray nodes' environment (AWS_ENDPOINT_URL and keys, which a worker
must have itself) is fixed when the session's cluster starts, usually by
another module. PostgreSQL is reached over its unix socket, which a network
namespace does not separate.

This module sorts before test_ray_executor.py, whose last test kills a node.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from nbops.store import RunStore
from nbops.store.objects import ObjectStore
from tests.conftest import build_notebook
from tests.services import ADMIN_PASSWORD, ADMIN_USER, postgres  # noqa: F401

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import WHY_NOT, drive  # noqa: E402

# The first test may also start the session's cluster (minutes on a loaded machine).
pytestmark = [pytest.mark.ray, pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or ""), pytest.mark.timeout(1200)]

BLOB_BYTES = 256 * 24_000
# The stage in the middle looks for make's payload where the driver would have put it.
LOOK = (
    "import glob\n"
    "made = [p for p in glob.glob(os.path.join(workspace, 'runs', '*', 'artifacts', 'make', '*')) if os.path.isfile(p)]\n"
    "payload = [p for p in made if not p.endswith('.json')]\n"
    "nbops.log_metric('driver_manifests', sum(p.endswith('manifest.json') for p in made))\n"
    "nbops.log_metric('driver_payload_files', len(payload))\n"
    "nbops.log_metric('driver_payload_copies', sum(os.stat(p).st_nlink == 1 for p in payload))\n"
    "n = len(blob) + tag\n"
    "nbops.log_metric('n', n)"
)


@pytest.fixture(scope="module")
def team(postgres, tmp_path_factory) -> dict:  # noqa: F811
    """NBOPS_* for a PostgreSQL store over its unix socket, objects in a shared folder."""
    db = postgres.new_database().rsplit("/", 1)[1]
    auth = f"{quote(ADMIN_USER, safe='')}:{quote(ADMIN_PASSWORD, safe='')}"
    store = f"postgresql://{auth}@/{db}?host={quote(str(postgres.socket_dir), safe='/')}&port={postgres.port}"
    objects = tmp_path_factory.mktemp("shared") / "objects"
    return {"env": {"NBOPS_STORE": store, "NBOPS_OBJECTS": objects.as_uri()}, "tcp": postgres.url_with(db, ADMIN_USER, ADMIN_PASSWORD), "objects": objects}


@pytest.fixture(scope="module")
def nbdir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("raydirect")
    workspace = folder / ".nbops"
    cells = [
        (f"workspace = {str(workspace)!r}\ntag = 1", ["parameters"]),
        ("import os\nimport nbops", ["setup"]),
        (f"blob = bytes(range(256)) * {BLOB_BYTES // 256}\nnbops.log_artifact(b'x' * 1_000_000, 'big.txt')", ["stage:make"]),
        (LOOK, ["stage:use"]),
        ("m = n * 2", ["stage:last"]),
    ]
    build_notebook(folder, cells, "direct.ipynb")
    return folder


def stage(run: dict, name: str) -> dict:
    return next(s for s in run["stages"] if s["name"] == name)


def ok(run: dict) -> dict:
    errors = [{k: str(v)[:1500] for k, v in s["error"].items() if k != "cell_source"} for s in run["stages"] if s["error"]]
    assert run["status"] == "succeeded", json.dumps(errors, indent=1)
    return run


@pytest.fixture(scope="module")
def direct(cluster, nbdir, team) -> dict:
    return ok(drive(cluster, nbdir / "direct.ipynb", "--executor", "ray", "--no-cache", env=team["env"], timeout=300))


def test_outputs_go_from_worker_to_objects_never_through_the_driver(direct, team):
    assert direct["executor"]["outputs_via"] == "object store"
    make, use = stage(direct, "make"), stage(direct, "use")
    assert make["worker"]["outputs_via"] == "object store"
    blob = make["outputs"]["blob"]
    assert blob["bytes"] > BLOB_BYTES
    # The task result held the records and the executed notebook only.
    assert make["worker"]["returned_bytes"] < 100_000, make["worker"]
    # While use ran, make's manifest was in the driver's run folder, its payload was not.
    assert direct["metrics"]["driver_manifests"] == 1
    assert direct["metrics"]["driver_payload_files"] == 0
    objects = ObjectStore(team["objects"])
    assert objects.check(blob["sha256"], blob["bytes"]) is None and objects.verify(blob["sha256"])
    [logged] = make["artifacts"]
    assert logged["name"] == "big.txt" and logged["bytes"] >= 1_000_000 and objects.verify(logged["sha256"])
    # use, on Ray, read make's output from the objects: the right bytes (6 MB + tag).
    assert use["worker"]["inputs_via"] == "object store"
    assert direct["metrics"]["n"] == BLOB_BYTES + 1
    # The records are in PostgreSQL, as the driver wrote them.
    rs = RunStore(team["tcp"], objects=team["env"]["NBOPS_OBJECTS"], workspace=team["objects"].parent / "ws")
    assert {s["name"]: s["outputs"] for s in rs.get_run(direct["id"])["stages"]}["make"]["blob"]["sha256"] == blob["sha256"]


def test_a_rerun_reuses_shared_outputs_without_copying_them(cluster, nbdir, team, direct):
    again = ok(drive(cluster, nbdir / "direct.ipynb", "--executor", "ray", "--param", "tag=2", env=team["env"], timeout=300))
    assert [stage(again, n)["status"] for n in ("make", "use", "last")] == ["cached", "succeeded", "succeeded"]
    assert stage(again, "make")["cached_from"] == direct["id"]
    use = stage(again, "use")["worker"]
    assert use["inputs_via"] == "object store" and use["outputs_via"] == "object store"
    assert again["metrics"]["n"] == BLOB_BYTES + 2
    # Nothing copied on the driver: no payload there, or (a scheduler that still links reused
    # outputs into the run folder) a hard link of the shared object, never a copy of its bytes.
    assert again["metrics"]["driver_payload_copies"] == 0


def test_a_local_store_still_sends_outputs_through_the_driver(cluster, nbdir, direct):
    local = ok(drive(cluster, nbdir / "direct.ipynb", "--executor", "ray", "--no-cache", timeout=300))
    assert local["executor"]["outputs_via"] == "driver"
    make = stage(local, "make")
    assert make["worker"]["outputs_via"] == "driver" and stage(local, "use")["worker"]["inputs_via"] == "driver"
    assert make["worker"]["returned_bytes"] > BLOB_BYTES
    assert local["metrics"]["driver_payload_files"] == 1 and local["metrics"]["n"] == BLOB_BYTES + 1
    assert make["outputs"]["blob"]["sha256"] == stage(direct, "make")["outputs"]["blob"]["sha256"]
