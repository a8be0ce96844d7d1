"""Kale's tag combinations, read the way Kale reads them (warnings, not errors)."""

from __future__ import annotations

import nbformat

from nbops import api


def graph_of(*cells):
    doc = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src, metadata={"tags": tags}) for tags, src in cells])
    g = api.load_graph("kale_rules.ipynb", content=doc)
    assert not g.errors, [e.message for e in g.errors]
    return g, {s.name: s for s in g.stages}


def test_empty_block_tag_continues_the_stage_above():
    g, s = graph_of(
        (["block:load"], "data = [1, 2]"),
        (["block:"], "more = data + [3]"),  # Kale's extension leaves such tags behind
        (["block:train", "prev:load"], "model = sum(more)"),
    )
    assert list(s) == ["load", "train"]
    assert s["load"].cells == [0, 1]
    assert s["train"].inputs == {"more": "load"}
    assert [(w.code, w.cell_index) for w in g.warnings] == [("empty-stage-tag", 1)]


def test_skip_wins_over_a_stage_tag():
    g, s = graph_of(
        (["block:load"], "data = [1, 2]"),
        (["skip", "block:explore"], "print(data)"),
        ([], "total = sum(data)"),  # skip is never the stage above: this continues 'load'
    )
    assert list(s) == ["load"]
    assert s["load"].cells == [0, 2]
    assert g.roles[1] == ("skip", None)
    assert [(w.code, w.cell_index) for w in g.warnings] == [("ignored-tags", 1)]
    assert "stage" in g.warnings[0].message


def test_skip_wins_over_a_prev_tag():
    g, s = graph_of(
        (["block:load"], "data = [1, 2]"),
        (["block:train"], "model = 1"),
        (["skip", "prev:load"], "print(data)"),
    )
    assert s["train"].after == [] and s["train"].upstream == []  # no edge from the skip cell's prev:
    assert g.roles[2] == ("skip", None)
    assert [(w.code, w.cell_index) for w in g.warnings] == [("ignored-tags", 2)]
    assert "after" in g.warnings[0].message


def test_annotations_and_labels_belong_to_the_stage():
    g, s = graph_of(
        (["step:load", "annotation:example.com/owner:data-team", "label:tier:gold"], "data = [1]"),
        (["label:size:small"], "rows = len(data)"),  # any cell of the stage may carry them
        (["step:train", "prev:load"], "model = rows"),
    )
    assert s["load"].annotations == {"example.com/owner": "data-team"}
    assert s["load"].labels == {"tier": "gold", "size": "small"}
    assert s["train"].annotations == {} and s["train"].labels == {}


def test_conflicting_labels_of_one_stage_are_an_error():
    doc = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("a = 1", metadata={"tags": ["step:a", "label:tier:gold"]}),
        nbformat.v4.new_code_cell("b = a", metadata={"tags": ["label:tier:silver"]}),
    ])  # fmt: skip
    g = api.load_graph("conflict.ipynb", content=doc)
    assert [(e.code, e.cell_index) for e in g.errors] == [("conflicting-resources", 1)]
    assert "'gold' and 'silver'" in g.errors[0].message
