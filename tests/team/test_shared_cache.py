"""One cache for everyone: two people, two checkouts of one notebook, one team store.

End to end through the CLI (real kernels, real PostgreSQL, S3 on moto or a shared folder):
the second checkout's run is reused whole when its code and data are the same, and runs
again when its own data file or local module differs, even though the first checkout's
copy is unchanged on the same machine. Below, the same rule on ``plan/fingerprint`` alone.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from nbops.plan.fingerprint import CODE, INPUT, HashMemo, changed_deps, deps_from_records
from nbops.store import open_store
from tests.conftest import build_notebook, run_cli
from tests.services import ADMIN_PASSWORD

SHARED = pytest.mark.parametrize("store_backend", ["pg-s3", "pg-file"], indirect=True)
CELLS = [
    ("n = 3", ["parameters"]),
    ("import helpers", ["setup"]),
    ("rows = [int(x) for x in open('data.csv').read().split()]", ["stage:load"]),
    ("total = sum(helpers.double(r) for r in rows) * n", ["stage:total"]),
]


def _checkout(root: Path) -> Path:
    """A checkout: the notebook, the data file it reads, the module it imports."""
    root.mkdir(parents=True)
    (root / "data.csv").write_text("1\n2\n3\n")
    (root / "helpers.py").write_text("def double(x):\n    return 2 * x\n")
    return build_notebook(root, CELLS)


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ADMIN_PASSWORD not in proc.stdout + proc.stderr
    return proc


def _run(nb: Path, backend, user: str) -> dict:
    return json.loads(_ok(run_cli("run", str(nb), "--json", cwd=nb.parent, env={**backend.env, "NBOPS_USER": user})).stdout)


def _why(nb: Path, backend, user: str) -> dict[str, dict]:
    out = json.loads(_ok(run_cli("why", "latest", "--notebook", str(nb), "--json", cwd=nb.parent, env={**backend.env, "NBOPS_USER": user})).stdout)
    return {s["name"]: s for s in out["stages"]}


@pytest.fixture
def checkouts(tmp_path) -> tuple[Path, Path]:
    return _checkout(tmp_path / "alice" / "project"), _checkout(tmp_path / "bob" / "work" / "project")


@SHARED
def test_the_second_user_in_another_checkout_is_entirely_cached(store_backend, checkouts):
    alice_nb, bob_nb = checkouts
    first = _run(alice_nb, store_backend, "alice")
    assert [s["status"] for s in first["stages"]] == ["succeeded", "succeeded"]
    second = _run(bob_nb, store_backend, "bob")
    assert [(s["name"], s["status"]) for s in second["stages"]] == [("load", "cached"), ("total", "cached")]
    why = _why(bob_nb, store_backend, "bob")
    assert {name: s["reason"]["kind"] for name, s in why.items()} == {"load": "cached", "total": "cached"}
    assert all(first["id"] in s["reason"]["detail"] for s in why.values())

    store = open_store(store_backend.store, bob_nb, objects=store_backend.objects, create=False)
    runs = {r["id"]: r for r in store.list_runs()}
    assert (runs[first["id"]]["user"], runs[second["id"]]["user"]) == ("alice", "bob")
    assert runs[first["id"]]["host"] == runs[second["id"]]["host"] == socket.gethostname()
    # What the cache keeps is content, never where a checkout is.
    for stage in store.get_run(first["id"])["stages"]:
        text = json.dumps({k: stage[k] for k in ("key_parts", "deps", "cache_key")})
        assert str(alice_nb.parent) not in text and "alice" not in text, text
    assert {d["path"] for s in store.get_run(first["id"])["stages"] for d in s["deps"] if d["kind"] in ("file", "module")} == {"data.csv", "helpers.py"}


@SHARED
def test_the_second_checkouts_own_data_and_module_decide(store_backend, checkouts):
    alice_nb, bob_nb = checkouts
    first = _run(alice_nb, store_backend, "alice")
    (bob_nb.parent / "data.csv").write_text("1\n2\n4\n")  # same size, other bytes; alice's copy is unchanged
    second = _run(bob_nb, store_backend, "bob")
    assert [s["status"] for s in second["stages"]] == ["succeeded", "succeeded"]
    why = _why(bob_nb, store_backend, "bob")
    assert why["load"]["reason"]["kind"] == "input" and "data.csv changed" in why["load"]["reason"]["detail"]

    (bob_nb.parent / "data.csv").write_text("1\n2\n3\n")  # back to alice's data: her results serve again
    (bob_nb.parent / "helpers.py").write_text("def double(x):\n    return x + x\n")
    third = _run(bob_nb, store_backend, "bob")
    assert [(s["name"], s["status"]) for s in third["stages"]] == [("load", "cached"), ("total", "succeeded")]
    why = _why(bob_nb, store_backend, "bob")
    assert why["load"]["reason"]["detail"].endswith(first["id"])
    assert why["total"]["reason"]["kind"] == "code" and "module helpers (helpers.py) changed" in why["total"]["reason"]["detail"]

    again = _run(alice_nb, store_backend, "alice")  # alice's checkout is as it was: all hers still holds
    assert [s["status"] for s in again["stages"]] == ["cached", "cached"]


# -- the rule, on plan/fingerprint alone -------------------------------------------


def _records(root: Path) -> list[dict]:
    return [
        {"kind": "file", "path": "data/train.csv", "abspath": str(root / "data" / "train.csv")},
        {"kind": "dir", "abspath": str(root / "data")},
        {"kind": "module", "name": "helpers", "abspath": str(root / "helpers.py")},
    ]


@pytest.fixture
def two(tmp_path) -> tuple[Path, Path]:
    roots = tmp_path / "a" / "proj", tmp_path / "b" / "deeper" / "proj"
    for root in roots:
        (root / "data").mkdir(parents=True)
        (root / "data" / "train.csv").write_text("a,b\n1,2\n")
        (root / "helpers.py").write_text("def f():\n    return 1\n")
    return roots


def test_deps_recorded_in_one_checkout_are_checked_in_another(two, tmp_path):
    a, b = two
    memo = HashMemo(tmp_path / "hashes.db")
    deps = deps_from_records(_records(a), str(a), memo)
    assert [d["key"] for d in deps] == ["dir:data", "file:data/train.csv", "module:helpers"]
    assert str(a) not in json.dumps(deps)
    assert changed_deps(deps, str(b), memo, {}) == []
    (b / "data" / "train.csv").write_text("a,b\n9,9\n")
    (b / "helpers.py").write_text("def f():\n    return 2\n")
    changes = changed_deps(deps, str(b), memo, {})
    assert any(c["kind"] == INPUT and c["detail"].startswith("data/train.csv changed") for c in changes)
    assert {"kind": CODE, "detail": "module helpers (helpers.py) changed"} in changes
    assert changed_deps(deps, str(a), memo, {}) == []  # the recording checkout is unchanged


def test_an_absolute_path_outside_the_folder_is_that_very_file(two, tmp_path):
    a, b = two
    shared = tmp_path / "shared.csv"
    shared.write_text("x\n")
    outside_relative = a.parent / "side.csv"
    outside_relative.write_text("y\n")
    records = [
        {"kind": "file", "path": str(shared), "abspath": str(shared)},
        {"kind": "file", "path": "../side.csv", "abspath": str(outside_relative)},
        {"kind": "file", "path": str(a / "data" / "train.csv"), "abspath": str(a / "data" / "train.csv")},  # absolute, inside
    ]
    memo = HashMemo(tmp_path / "hashes.db")
    deps = deps_from_records(records, str(a), memo)
    assert sorted(d["path"] for d in deps) == sorted([str(shared), "../side.csv", "data/train.csv"])
    changes = changed_deps(deps, str(b), memo, {})
    assert [c["detail"] for c in changes] == ["../side.csv was deleted"]  # b has no ../side.csv: run, never guess
    shared.write_text("z\n")
    assert any(c["detail"].startswith(f"{shared} changed") for c in changed_deps(deps, str(a), memo, {}))


def test_a_symlinked_data_folder_is_followed_in_each_checkout(two, tmp_path):
    a, b = two
    for root, content in ((a, "1\n"), (b, "2\n")):
        target = tmp_path / f"data-of-{root.parent.name}"
        target.mkdir()
        (target / "x.csv").write_text(content)
        os.symlink(target, root / "linked")
    records = [{"kind": "file", "path": "linked/x.csv", "abspath": os.path.realpath(a / "linked" / "x.csv")}]
    memo = HashMemo(tmp_path / "hashes.db")
    deps = deps_from_records(records, str(a), memo)
    assert deps[0]["path"] == "linked/x.csv"
    assert changed_deps(deps, str(a), memo, {}) == []
    assert changed_deps(deps, str(b), memo, {})[0]["detail"].startswith("linked/x.csv changed")


def test_records_from_before_relative_deps_are_checked_beside_the_notebook(two, tmp_path):
    """A record kept by an older nbops: ``abspath`` of the recorder, ``path`` relative inside its folder."""
    a, b = two
    memo = HashMemo(tmp_path / "hashes.db")
    sha = memo.sha256(str(a / "data" / "train.csv"))
    old = [{"kind": "file", "key": f"file:{a}/data/train.csv", "path": "data/train.csv", "abspath": str(a / "data" / "train.csv"), "size": 8, "sha256": sha}]
    assert changed_deps(old, str(b), memo, {}) == []
    (b / "data" / "train.csv").write_text("a,b\n7,7\n")
    assert changed_deps(old, str(b), memo, {})[0]["detail"].startswith("data/train.csv changed")
