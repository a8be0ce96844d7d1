"""Fingerprints of what a stage read, and the changes changed_deps reports."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from nbops.plan.fingerprint import CODE, ENV, INPUT, HashMemo, changed_deps, deps_from_records


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "data" / "more").mkdir(parents=True)
    (root / "data" / "train.csv").write_text("a,b\n1,2\n")
    (root / "data" / "test.csv").write_text("a,b\n3,4\n")
    (root / "helpers.py").write_text("def f():\n    return 1\n")
    return root


@pytest.fixture
def memo(tmp_path: Path) -> HashMemo:
    return HashMemo(tmp_path / "store" / "hashes.db")


def _records(root: Path) -> list[dict]:
    return [
        {"kind": "file", "path": "data/train.csv", "abspath": str(root / "data" / "train.csv")},
        {"kind": "dir", "abspath": str(root / "data")},
        {"kind": "module", "name": "helpers", "abspath": str(root / "helpers.py")},
        {"kind": "unseen", "what": "pd.read_sql(...)"},
        {"kind": "packages", "versions": {"scikit-learn": "1.9.1", "pandas": "3.0.0"}},
    ]


PACKAGES = {"scikit-learn": "1.9.1", "pandas": "3.0.0", "other": "1"}


def test_deps_have_keys_relative_paths_and_fingerprints(project, memo):
    deps = deps_from_records(_records(project) + _records(project), str(project), memo)
    by_kind = {d["kind"]: d for d in deps}
    assert len(deps) == len({d["key"] for d in deps}) == 6  # duplicates folded, one dep per package
    assert by_kind["file"]["path"] == "data/train.csv" and len(by_kind["file"]["sha256"]) == 64
    assert by_kind["dir"]["path"] == "data" and by_kind["dir"]["count"] == 3
    assert by_kind["module"]["name"] == "helpers" and by_kind["module"]["path"] == "helpers.py"
    assert {d["name"]: d["version"] for d in deps if d["kind"] == "package"} == {"scikit-learn": "1.9.1", "pandas": "3.0.0"}
    assert changed_deps(deps, str(project), memo, PACKAGES) == []


def test_changed_file_is_an_input_change_naming_it(project, memo):
    deps = deps_from_records(_records(project), str(project), memo)
    before = next(d["sha256"] for d in deps if d["kind"] == "file")
    (project / "data" / "train.csv").write_text("a,b\n1,9\n")  # same size, same second
    changes = changed_deps(deps, str(project), memo, PACKAGES)
    assert {
        "kind": INPUT,
        "detail": f"data/train.csv changed (sha256 {before[:8]} → "
        f"{__import__('nbops.runtime.files', fromlist=['x']).sha256_file(project / 'data' / 'train.csv')[:8]})",
    } in changes
    assert any(c["kind"] == INPUT and c["detail"].startswith("folder data changed") for c in changes)


def test_identical_rewrite_is_no_change(project, memo):
    deps = deps_from_records(_records(project), str(project), memo)
    path = project / "data" / "train.csv"
    path.write_text(path.read_text())
    os.utime(path, ns=(time.time_ns() + 5_000_000_000,) * 2)
    assert changed_deps(deps, str(project), memo, PACKAGES) == []


def test_deleted_file_and_new_file_in_listed_folder(project, memo):
    deps = deps_from_records(_records(project), str(project), memo)
    (project / "data" / "train.csv").unlink()
    details = [c["detail"] for c in changed_deps(deps, str(project), memo, PACKAGES)]
    assert "data/train.csv was deleted" in details
    deps = deps_from_records(_records(project), str(project), memo)
    assert next(d for d in deps if d["kind"] == "file")["sha256"] is None  # vanished before hashing
    assert changed_deps(deps, str(project), memo, PACKAGES) == []
    (project / "data" / "new.csv").write_text("x\n")
    assert changed_deps(deps, str(project), memo, PACKAGES) == [{"kind": INPUT, "detail": "folder data changed (2 → 3 entries)"}]
    (project / "data" / "train.csv").write_text("back\n")
    assert {"kind": INPUT, "detail": "data/train.csv appeared"} in changed_deps(deps, str(project), memo, PACKAGES)


def test_edited_module_is_a_code_change(project, memo):
    deps = deps_from_records(_records(project), str(project), memo)
    (project / "helpers.py").write_text("def f():\n    return 2\n")
    assert changed_deps(deps, str(project), memo, PACKAGES) == [{"kind": CODE, "detail": "module helpers (helpers.py) changed"}]


def test_package_versions_are_env_changes(project, memo):
    deps = deps_from_records(_records(project), str(project), memo)
    changes = changed_deps(deps, str(project), memo, {"scikit_learn": "1.9.2"})
    assert changes == [
        {"kind": ENV, "detail": "pandas 3.0.0 is no longer installed"},
        {"kind": ENV, "detail": "scikit-learn 1.9.1 → 1.9.2"},
    ]


def test_remote_that_cannot_be_rechecked_counts_as_changed(project, memo):
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/x.csv", b"a\n1\n")
    records = [{"kind": "remote", "url": "memory://bucket/x.csv"}, {"kind": "remote", "url": "nosuchproto://b/x.csv"}]
    deps = deps_from_records(records, str(project), memo)
    assert next(d for d in deps if d["url"].startswith("memory"))["fingerprint"]["size"] == "4"
    changes = changed_deps(deps, str(project), memo, {})
    assert len(changes) == 1 and changes[0]["kind"] == INPUT
    assert changes[0]["detail"].startswith("nosuchproto://b/x.csv cannot be re-checked (")
    fs.pipe("/bucket/x.csv", b"a\n1\n2\n")
    assert any(c["detail"].startswith("memory://bucket/x.csv changed") for c in changed_deps(deps, str(project), memo, {}))


def test_memo_remembers_by_stat_and_survives_reopen(project, tmp_path):
    path = project / "data" / "train.csv"
    old = time.time_ns() - 10_000_000_000
    os.utime(path, ns=(old, old))
    first = HashMemo(tmp_path / "m.db").sha256(str(path))
    again = HashMemo(tmp_path / "m.db")
    rows = __import__("sqlite3").connect(tmp_path / "m.db").execute("SELECT sha256 FROM hashes").fetchall()
    assert rows == [(first,)] and again.sha256(str(path)) == first
    assert again.sha256(str(project / "missing.csv")) is None


def test_ten_thousand_unchanged_files_check_fast(tmp_path, memo):
    folder = tmp_path / "many"
    folder.mkdir()
    old = time.time_ns() - 10_000_000_000
    records = []
    for i in range(10_000):
        p = folder / f"f{i}.txt"
        p.write_text(str(i))
        os.utime(p, ns=(old, old))
        records.append({"kind": "file", "path": str(p), "abspath": str(p)})
    deps = deps_from_records(records, str(tmp_path), memo)
    start = time.perf_counter()
    assert changed_deps(deps, str(tmp_path), memo, {}) == []
    seconds = time.perf_counter() - start
    print(f"\nchanged_deps over 10,000 unchanged files: {seconds * 1000:.0f} ms")
    assert seconds < 1.0
