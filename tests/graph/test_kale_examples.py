"""The twelve notebooks of Kale's repository graph as Kale reads them: no errors, at most warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbops import api

KALE = Path(__file__).resolve().parents[1] / "notebooks" / "kale"
NOTEBOOKS = sorted(p.relative_to(KALE).as_posix() for p in KALE.rglob("*.ipynb"))
# read_data.ipynb only downloads the taxi data: it has no Kale tag at all, so it is no pipeline in Kale either.
NOT_A_PIPELINE = {"taxi-cab-classification/read_data.ipynb"}


def test_all_twelve_are_here():
    assert len(NOTEBOOKS) == 12, NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_kale_example_graphs_without_errors(name):
    g = api.load_graph(KALE / name)
    if name in NOT_A_PIPELINE:
        assert [e.code for e in g.errors] == ["no-stages"]
        return
    assert not g.errors, [(e.cell_index, e.code, e.message) for e in g.errors]
    assert g.stages and all(w.kind == "warning" for w in g.warnings)


def test_dog_breed_empty_block_tags_continue_cnn_from_scratch():
    g = api.load_graph(KALE / "dog-breed-classification/dog-breed.ipynb")
    stage = g.stage("cnn_from_scratch")
    assert {29, 31, 33, 35, 37} <= set(stage.cells)  # the cells tagged 'block:'
    empty = {w.cell_index for w in g.warnings if w.code == "empty-stage-tag"}
    assert {29, 31, 33, 35, 37} <= empty and all(g.roles[i][0] == "stage" for i in empty)


def test_katib_skip_cells_with_prev_tags_are_skipped():
    g = api.load_graph(KALE / "dog-breed-classification/dog-breed-katib.ipynb")
    assert g.roles[27] == ("skip", None) and g.roles[39] == ("skip", None)
    assert [s.name for s in g.stages] == ["start", "load_data", "detect_dogs", "cnn_resnet50"]


def test_titanic_stages_and_data_beside_it():
    path = KALE / "titanic-ml-dataset/titanic_dataset_ml.ipynb"
    assert (path.parent / "data" / "train.csv").is_file()  # read as "data/train.csv" from the notebook's folder
    g = api.load_graph(path)
    names = [s.name for s in g.stages]
    assert names[:3] == ["loaddata", "datapreprocessing", "featureengineering"] and names[-1] == "results"
    assert g.stage("results").upstream == ["randomforest", "logisticregression", "naivebayes", "svm", "decisiontree"]
