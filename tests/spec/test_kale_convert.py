"""Kale's notebooks convert; pipeline.yaml keeps Kale's annotation: and label: tags per stage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from nbops import api
from nbops.spec import load_pipeline

KALE = Path(__file__).resolve().parents[1] / "notebooks" / "kale"
PIPELINES = sorted(p.relative_to(KALE).as_posix() for p in KALE.rglob("*.ipynb") if p.name != "read_data.ipynb")


@pytest.mark.parametrize("name", PIPELINES)
def test_kale_example_converts(tmp_path, name):
    spec = api.convert(KALE / name, tmp_path / "p")
    data = yaml.safe_load((tmp_path / "p" / "pipeline.yaml").read_text())
    assert [s["name"] for s in data["stages"]] == [s.name for s in spec.stages]
    for stage in data["stages"]:
        assert (tmp_path / "p" / stage["notebook"]).is_file()
        assert stage["annotations"] == {} and stage["labels"] == {}  # none in Kale's examples


def test_annotation_and_label_tags_reach_pipeline_yaml(tmp_path):
    source = KALE / "titanic-ml-dataset"
    work = tmp_path / "titanic"
    shutil.copytree(source, work)
    path = work / "titanic_dataset_ml.ipynb"
    doc = json.loads(path.read_text())
    for cell in doc["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "block:randomforest" in tags:
            tags += ["label:model:forest", "annotation:example.com/owner:ml:team", "label:tier:gold"]
        if "block:svm" in tags:
            tags += ["annotation:sidecar.istio.io/inject:false"]
    path.write_text(json.dumps(doc))

    api.convert(path, tmp_path / "a")
    api.convert(path, tmp_path / "b")
    first = (tmp_path / "a" / "pipeline.yaml").read_text()
    assert first == (tmp_path / "b" / "pipeline.yaml").read_text()  # deterministic
    stages = {s["name"]: s for s in yaml.safe_load(first)["stages"]}
    assert stages["randomforest"]["labels"] == {"model": "forest", "tier": "gold"}
    assert list(stages["randomforest"]["labels"]) == ["model", "tier"]  # sorted keys
    assert stages["randomforest"]["annotations"] == {"example.com/owner": "ml:team"}
    assert stages["svm"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert stages["svm"]["labels"] == {} and stages["results"]["annotations"] == {}
    loaded = load_pipeline(tmp_path / "a")  # and read back
    assert loaded.stage("randomforest").labels == {"model": "forest", "tier": "gold"}
    assert loaded.stage("svm").annotations == {"sidecar.istio.io/inject": "false"}
