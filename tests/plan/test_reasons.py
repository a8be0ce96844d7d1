"""Why each stage runs: every reason kind, end to end on real kernels, and the dry run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nbops import api
from nbops.store import RunStore

from ..conftest import build_notebook


def build(folder: Path, cells: list[tuple[str, list[str]]], name: str = "why.ipynb") -> Path:
    return build_notebook(folder, cells, name)


def edit(path: Path, index: int, source: str) -> None:
    nb = json.loads(path.read_text())
    nb["cells"][index]["source"] = source
    path.write_text(json.dumps(nb))


def reasons(run: dict) -> dict[str, tuple[str, str]]:
    return {s["name"]: (s["reason"]["kind"], s["reason"]["detail"]) for s in run["stages"]}


def kinds(run: dict) -> dict[str, str]:
    return {name: kind for name, (kind, _) in reasons(run).items()}


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    (tmp_path / "data.csv").write_text("x\n1\n2\n3\n")
    return build(tmp_path, [
        ("n = 3", ["parameters"]),
        ("import pandas as pd\ndf = pd.read_csv('data.csv')", ["stage:load"]),
        ("total = int(df['x'].sum())", ["stage:features"]),
        ("score = total * n", ["stage:train"]),
    ])  # fmt: skip


def test_every_kind_of_reason(pipeline: Path):
    first = api.run(pipeline, metric_names=["score"])
    assert first["status"] == "succeeded" and first["metrics"]["score"] == 18
    assert set(kinds(first).values()) == {"first-run"}

    again = api.run(pipeline)
    assert set(kinds(again).values()) == {"cached"}
    assert first["id"] in reasons(again)["train"][1]

    params = api.run(pipeline, {"n": 4})
    assert kinds(params) == {"load": "cached", "features": "cached", "train": "params"}
    assert reasons(params)["train"][1] == "n: 3 → 4"

    edit(pipeline, 2, "total = int(df['x'].sum()) + 0  # same value")
    code = api.run(pipeline, {"n": 4})
    assert kinds(code) == {"load": "cached", "features": "code", "train": "cached"}  # same output: reused
    assert reasons(code)["features"][1] == "cell 2 (\"total = int(df['x'].sum()) + 0  # same value\") changed"

    edit(pipeline, 2, "total = int(df['x'].sum()) + 1")
    upstream = api.run(pipeline, {"n": 4})
    assert kinds(upstream) == {"load": "cached", "features": "code", "train": "upstream"}
    assert reasons(upstream)["train"][1] == "stage 'features' re-ran and produced a different 'total'"

    (pipeline.parent / "data.csv").write_text("x\n1\n2\n30\n")
    data = api.run(pipeline, {"n": 4}, metric_names=["score"])
    assert kinds(data)["load"] == "input" and "data.csv" in reasons(data)["load"][1]
    assert data["metrics"]["score"] == (33 + 1) * 4

    forced = api.run(pipeline, {"n": 4}, no_cache=True)
    assert set(kinds(forced).values()) == {"no-cache"}

    why = api.why(data["id"], "load", path=pipeline)
    assert why["stages"] == [{"name": "load", "status": "succeeded", "reason": data["stages"][0]["reason"]}]


def test_cache_off_and_resumed(tmp_path: Path):
    nb = build(tmp_path, [
        ("fail = True", ["parameters"]),
        ("a = 1", ["stage:make"]),
        ("b = a + 1", ["stage:always", "cache:off"]),
        ("assert not fail\nc = b + 1", ["stage:last"]),
    ])  # fmt: skip
    failed = api.run(nb)
    assert failed["status"] == "failed"
    resumed = api.resume(failed["id"], path=nb, params={"fail": False})
    assert kinds(resumed)["make"] == "resumed" and failed["id"] in reasons(resumed)["make"][1]
    assert kinds(resumed)["always"] == "resumed"  # resume continues from the failure, cache:off or not
    assert kinds(api.run(nb, {"fail": False}))["always"] == "cache-off"
    assert kinds(resumed)["last"] == "first-run"  # its only earlier execution failed


def _fake_dist(site: Path, name: str, version: str) -> None:
    for old in site.glob(f"{name}-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(f"{name}\n")


def test_env_reason_names_the_package_and_unrelated_installs_keep_the_cache(tmp_path: Path, monkeypatch):
    site = tmp_path / "site"
    (site / "fakepkg").mkdir(parents=True)
    (site / "fakepkg" / "__init__.py").write_text("VALUE = 7\n")
    _fake_dist(site, "fakepkg", "1.0")
    monkeypatch.syspath_prepend(str(site))  # the driver sees the distribution...
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))  # ...and the kernels
    work = tmp_path / "nb"
    work.mkdir()
    nb = build(work, [
        ("a = 2", ["stage:plain"]),
        ("import fakepkg\nb = a * fakepkg.VALUE", ["stage:uses_pkg"]),
    ])  # fmt: skip
    first = api.run(nb)
    assert first["status"] == "succeeded", first
    assert any(d.get("kind") == "package" and d.get("name") == "fakepkg" for d in first["stages"][1]["deps"])

    _fake_dist(site, "unrelatedpkg", "3.0")  # an unrelated install
    unrelated = api.run(nb)
    assert set(kinds(unrelated).values()) == {"cached"}

    _fake_dist(site, "fakepkg", "1.1")
    upgraded = api.run(nb)
    assert kinds(upgraded) == {"plain": "cached", "uses_pkg": "env"}
    assert reasons(upgraded)["uses_pkg"][1] == "fakepkg 1.0 → 1.1"


def test_dry_run_says_what_the_run_will_do(pipeline: Path):
    fresh = api.plan_run(pipeline)
    assert fresh["store"] is None and not (pipeline.parent / ".nbops").exists()  # a read creates nothing
    assert [(s["name"], s["action"], s["reason"]["kind"]) for s in fresh["stages"]] == [
        ("load", "run", "first-run"), ("features", "run", "upstream"), ("train", "run", "upstream"),
    ]  # fmt: skip
    assert fresh["stages"][0]["reads"] == ["data.csv"]

    api.run(pipeline)
    edit(pipeline, 2, "total = int(df['x'].sum()) * 2")
    store = RunStore(pipeline.parent / ".nbops")
    before = len(store.list_runs())
    plan = api.plan_run(pipeline)
    assert [(s["action"], s["reason"]["kind"]) for s in plan["stages"]] == [
        ("reuse", "cached"), ("run", "code"), ("run", "upstream"),
    ]  # fmt: skip
    assert len(store.list_runs()) == before  # no run written
    done = api.run(pipeline)
    assert kinds(done) == {"load": "cached", "features": "code", "train": "upstream"}


def test_runs_diff_explains_the_miss(pipeline: Path):
    a = api.run(pipeline)
    (pipeline.parent / "data.csv").write_text("x\n5\n")
    b = api.run(pipeline, {"n": 5})
    diff = api.diff_runs(a["id"], b["id"], path=pipeline)
    by_stage = {r["stage"]: r for r in diff["reasons"]}
    assert by_stage["train"]["kind"] == "params" and "n: 3 → 5" in by_stage["train"]["detail"]
    assert [d["path"] for d in diff["data"]] == ["data.csv"]
