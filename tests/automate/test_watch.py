"""Data triggers on real files: content hashes, debounce, baseline, globs, file:// through fsspec, a notebook's inputs."""

from __future__ import annotations

import hashlib
import json
import os

from nbops.automate.triggers import make_trigger
from nbops.automate.watch import notebook_inputs, scan
from tests.services import s3  # noqa: F401 - fixture


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class Watcher:
    """The scheduler's part: keep the state, advance an injected clock."""

    def __init__(self, base, watch, debounce=2.0):
        self.base, self.trigger, self.state, self.now = str(base), make_trigger(on_change=watch, debounce=debounce), {}, 1000.0

    def tick(self, dt: float = 0.0):
        self.now += dt
        result = scan(self.trigger, self.state, self.now, base=self.base)
        self.state = json.loads(json.dumps(result.state))  # it lives in the store as JSON
        return result


def test_first_scan_is_a_baseline_then_a_change_fires_with_the_new_hash(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    w = Watcher(tmp_path, ["data.csv"], debounce=0)
    assert w.tick().fired == []
    assert w.tick(1).fired == []  # nothing changed
    (tmp_path / "data.csv").write_text("a,b\n1,3\n")
    fired = w.tick(1).fired
    assert len(fired) == 1 and fired[0]["key"].startswith("change:")
    assert fired[0]["files"] == [{"path": "data.csv", "hash": sha("a,b\n1,3\n"), "old": sha("a,b\n1,2\n")}]
    assert w.tick(1).fired == []  # fired once


def test_an_unchanged_rewrite_does_not_fire(tmp_path):
    f = tmp_path / "data.csv"
    f.write_text("same\n")
    w = Watcher(tmp_path, ["data.csv"], debounce=0)
    w.tick()
    os.utime(f, ns=(1, 1))  # another mtime, as a rewrite has
    f.write_text("same\n")
    assert w.tick(5).fired == [] and w.tick(5).fired == []


def test_debounce_waits_until_the_content_settles(tmp_path):
    f = tmp_path / "data.csv"
    f.write_text("v1")
    w = Watcher(tmp_path, ["*.csv"], debounce=2.0)
    w.tick()
    f.write_text("v2")
    assert w.tick(0.5).fired == []  # just changed
    f.write_text("v3")  # still being written
    assert w.tick(1.5).fired == []  # v3 has stood 0 s
    assert w.tick(1.0).fired == []  # 1 s
    fired = w.tick(1.0).fired  # 2 s: settled
    assert [x["hash"] for x in fired[0]["files"]] == [sha("v3")] and fired[0]["files"][0]["old"] == sha("v1")
    # a change undone before it settled fires nothing
    f.write_text("v4")
    w.tick(0.1)
    f.write_text("v3")
    assert w.tick(5).fired == []


def test_several_files_changed_together_are_one_firing_and_a_new_file_counts(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("a1")
    w = Watcher(tmp_path, ["data/*.csv"], debounce=1)
    w.tick()
    (tmp_path / "data" / "a.csv").write_text("a2")
    (tmp_path / "data" / "b.csv").write_text("b1")
    w.tick(0.1)
    fired = w.tick(1).fired
    assert len(fired) == 1
    assert fired[0]["files"] == [
        {"path": "data/a.csv", "hash": sha("a2"), "old": sha("a1")},
        {"path": "data/b.csv", "hash": sha("b1"), "old": None},
    ]
    # a deletion fires nothing
    (tmp_path / "data" / "b.csv").unlink()
    assert w.tick(5).fired == [] and w.tick(5).fired == []


def test_keys_are_stable_and_a_return_to_old_content_fires_again(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("A")
    w1, w2 = Watcher(tmp_path, ["x.csv"], debounce=0), Watcher(tmp_path, ["x.csv"], debounce=0)
    w1.tick(), w2.tick()
    f.write_text("B")
    k1, k2 = w1.tick(1).fired[0]["key"], w2.tick(3).fired[0]["key"]
    assert k1 == k2  # two schedulers, same firing
    keys = {k1}
    for content in ("A", "B"):
        f.write_text(content)
        keys.add(w1.tick(1).fired[0]["key"])
    assert len(keys) == 3


def test_a_glob_matching_nothing_warns_once(tmp_path):
    w = Watcher(tmp_path, ["incoming/*.parquet"], debounce=0)
    first = w.tick()
    assert len(first.warnings) == 1 and "incoming/*.parquet matches no file" in first.warnings[0]
    assert w.tick(1).warnings == []  # said once
    (tmp_path / "incoming").mkdir()
    (tmp_path / "incoming" / "p1.parquet").write_bytes(b"PAR1")
    result = w.tick(1)
    assert result.warnings == [] and result.fired[0]["files"][0] == {
        "path": "incoming/p1.parquet",
        "hash": "sha256:" + hashlib.sha256(b"PAR1").hexdigest(),
        "old": None,
    }


def test_file_url_through_fsspec(tmp_path):
    f = tmp_path / "remote.csv"
    f.write_text("r1")
    url = f"file://{f}"
    w = Watcher(tmp_path, [url], debounce=0)
    assert w.tick().fired == [] and w.tick().warnings == []
    f.write_text("r2")
    fired = w.tick(1).fired
    assert fired[0]["files"] == [{"path": url, "hash": sha("r2"), "old": sha("r1")}]
    f.write_text("r2")
    assert w.tick(1).fired == []
    missing = Watcher(tmp_path, [f"file://{tmp_path}/nothing-*.csv"], debounce=0)
    assert "matches no file" in missing.tick().warnings[0]


def test_s3_objects_by_etag(s3, tmp_path):  # noqa: F811 - the fixture
    bucket = s3.new_bucket()
    client = s3.client()
    name = bucket.removeprefix("s3://")
    client.put_object(Bucket=name, Key="in/a.csv", Body=b"a1")
    w = Watcher(tmp_path, [f"{bucket}/in/*.csv"], debounce=0)
    assert w.tick().fired == [] and w.state["files"][f"{bucket}/in/a.csv"]["seen"].startswith("etag:")
    client.put_object(Bucket=name, Key="in/a.csv", Body=b"a1")  # the same bytes again: the same ETag
    assert w.tick(1).fired == []
    client.put_object(Bucket=name, Key="in/a.csv", Body=b"a2")
    client.put_object(Bucket=name, Key="in/b.csv", Body=b"b1")
    fired = w.tick(1).fired
    assert [(f["path"], f["old"] is None) for f in fired[0]["files"]] == [(f"{bucket}/in/a.csv", False), (f"{bucket}/in/b.csv", True)]
    assert fired[0]["files"][0]["hash"] == "etag:" + hashlib.md5(b"a2").hexdigest()


def test_an_unchanged_file_is_not_read_again(tmp_path, monkeypatch):
    f = tmp_path / "big.csv"
    f.write_text("x" * 100)
    old = 1_600_000_000_000_000_000  # an mtime long past: the stat can be trusted
    os.utime(f, ns=(old, old))
    w = Watcher(tmp_path, ["big.csv"], debounce=0)
    w.tick()
    reads = []
    import nbops.automate.watch as watch_module

    monkeypatch.setattr(watch_module, "sha256_file", lambda p: reads.append(p) or "0" * 64)
    w.tick(1)
    assert reads == []
    f.write_text("y" * 100)
    w.tick(1)
    assert len(reads) == 1


def test_notebook_inputs_finds_nbops_input_and_readers(tmp_path):
    nb = {
        "cells": [
            {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "data_dir = 'data'\n", "outputs": [], "execution_count": None},
            {"cell_type": "code", "metadata": {"tags": ["setup"]}, "source": "import nbops\nimport pandas as pd\n", "outputs": [], "execution_count": None},
            {
                "cell_type": "code",
                "metadata": {"tags": ["stage:load"]},
                "source": "%matplotlib inline\ndf = pd.read_csv(nbops.input(f'{data_dir}/train.csv'))\nextra = pd.read_parquet('extra.parquet')\n",
                "outputs": [],
                "execution_count": None,
            },
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    assert notebook_inputs(path) == ["data/train.csv", "extra.parquet"]
    assert notebook_inputs(path, {"data_dir": "other"}) == ["other/train.csv", "extra.parquet"]
