"""A store that verifies what it loads: damaged or missing objects are recomputed, edited stage code is never run."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from nbops import api
from nbops.errors import NbopsError
from nbops.store import RunStore
from nbops.store.maintenance import verify

from ..conftest import build_notebook


def _pipeline(folder: Path) -> Path:
    return build_notebook(folder, [
        ("import pandas as pd\ndf = pd.DataFrame({'x': [1, 2, 3]})", ["stage:load"]),
        ("total = int(df['x'].sum())", ["stage:features"]),
    ], "trust.ipynb")  # fmt: skip


def _edit_features(nb: Path, source: str) -> None:
    doc = json.loads(nb.read_text())
    doc["cells"][1]["source"] = source
    nb.write_text(json.dumps(doc))


def _df_object(run: dict, store: RunStore) -> Path:
    return store.objects.path(run["stages"][0]["outputs"]["df"]["sha256"])


def _kinds(run: dict) -> dict[str, str]:
    return {s["name"]: s["reason"]["kind"] for s in run["stages"]}


@pytest.fixture
def first(tmp_path: Path):
    nb = _pipeline(tmp_path)
    run = api.run(nb, metric_names=["total"])
    assert run["status"] == "succeeded" and run["metrics"]["total"] == 6
    return nb, run, RunStore(tmp_path / ".nbops")


def test_flipped_bytes_in_a_cached_object_are_caught_before_loading_and_recomputed(first):
    nb, run, store = first
    obj = _df_object(run, store)
    data = bytearray(obj.read_bytes())
    data[-20] ^= 0xFF  # same size: only the hash can tell
    os.chmod(obj, stat.S_IWUSR | stat.S_IRUSR)
    obj.write_bytes(bytes(data))
    _edit_features(nb, "total = int(df['x'].sum()) * 10")  # features must load df from the store
    notes = []
    again = api.run(nb, metric_names=["total"], progress=lambda event, stage, info: notes.append((event, stage, info)))
    assert again["status"] == "succeeded" and again["metrics"]["total"] == 60
    assert verify(store)["problems"] == []  # nothing lost: every record's objects are whole again
    assert _kinds(again) == {"load": "damaged", "features": "code"}
    assert any(e == "note" and "damaged" in i["message"] for e, _, i in notes)
    assert _df_object(again, store).read_bytes() != bytes(data)  # the good bytes are back under the hash


def test_a_deleted_object_is_recomputed_not_an_internal_error(first):
    nb, run, store = first
    _df_object(run, store).unlink()
    again = api.run(nb, metric_names=["total"])
    assert again["status"] == "succeeded" and again["metrics"]["total"] == 6
    assert verify(store)["problems"] == []
    assert again["stages"][0]["reason"]["kind"] == "damaged"
    assert "missing" in again["stages"][0]["reason"]["detail"]


def test_an_edited_stage_notebook_in_the_store_is_never_run(first):
    nb, run, store = first
    (stage_nb,) = store.root.glob("pipelines/*/stages/features.ipynb")
    doc = json.loads(stage_nb.read_text())
    for cell in doc["cells"]:
        if "total = " in cell["source"]:
            cell["source"] = "total = -1  # not what the notebook says"
    stage_nb.write_text(json.dumps(doc))
    again = api.run(nb, metric_names=["total"])
    assert again["metrics"]["total"] == 6 and set(_kinds(again).values()) == {"cached"}
    assert "total = -1" not in stage_nb.read_text()  # made again from the notebook


def test_an_edited_converted_folder_is_refused(tmp_path: Path):
    nb = _pipeline(tmp_path)
    out = tmp_path / "out"
    api.convert(nb, out)
    stage_nb = out / "stages" / "features.ipynb"
    stage_nb.write_text(stage_nb.read_text().replace("total = int", "total = 2 * int"))
    with pytest.raises(NbopsError, match="features no longer match pipeline.yaml"):
        api.run(out)


def test_resume_recomputes_a_succeeded_stage_whose_object_went_missing(tmp_path: Path):
    nb = _pipeline(tmp_path)
    _edit_features(nb, "assert len(df) > 5, 'first attempt fails'\ntotal = int(df['x'].sum())")
    failed = api.run(nb)
    assert failed["status"] == "failed"
    store = RunStore(tmp_path / ".nbops")
    _df_object(failed, store).unlink()
    _edit_features(nb, "total = int(df['x'].sum())")
    resumed = api.resume(failed["id"], path=nb)
    assert resumed["status"] == "failed"  # resume runs the code of the failed run: it fails again, but cleanly
    assert resumed["stages"][0]["reason"]["kind"] == "damaged" and resumed["stages"][0]["status"] == "succeeded"
