"""The stage graph of tagged notebooks: the tag vocabulary, Kale aliases and the %%stage magic in use."""

from __future__ import annotations

from nbops import api


def stages(path):
    g = api.load_graph(path)
    assert not g.errors, [e.message for e in g.errors]
    return g, {s.name: s for s in g.stages}


def test_every_tag_of_the_vocabulary(notebooks):
    g, s = stages(notebooks / "tags_all.ipynb")
    assert [x.name for x in g.stages] == ["make", "train", "report"]
    assert s["make"].resources == {"gpus": 0, "cpus": 2.0, "memory": 1024**3, "timeout": 30.0, "retries": 0}
    assert s["train"].resources["gpus"] == 1 and s["train"].resources["retries"] == 2
    assert s["train"].cache is False and s["make"].cache is True
    assert s["make"].cells == [2, 3]  # the untagged cell continues the stage
    assert 4 not in s["make"].cells  # skip cell
    assert s["train"].inputs == {"total": "make"}
    assert s["train"].setup_cells == [1] and s["train"].parameters == ["scale"]  # via the setup function
    assert s["report"].metrics == ["model", "len(summary)"]
    assert ("make", "report") in {(e.source, e.target) for e in g.edges if e.explicit}
    types = {p.name: p.type for p in g.parameters}
    assert types == {"n": "int", "scale": "float", "label": "str", "flag": "bool", "sizes": "list", "opts": "dict", "nothing": "none"}
    roles = {i: r for i, (r, _) in g.roles.items()}
    assert roles[0] == "parameters" and roles[1] == "setup" and roles[4] == "skip" and roles[7] == "metrics"


def test_kale_notebook_needs_no_edits(notebooks):
    g, s = stages(notebooks / "kale.ipynb")
    assert list(s) == ["load", "train", "evaluate"]
    assert s["train"].resources["gpus"] == 1  # limit:nvidia.com/gpu:1
    assert s["train"].upstream == ["load"]
    assert s["train"].setup_cells == [0, 1]  # functions cell needs the imports cell
    assert s["evaluate"].metrics == ["score", "avg"]  # print(x) lines of pipeline-metrics
    assert [p.name for p in g.parameters] == ["k"]


def test_stage_magic_equals_tags(notebooks):
    g, s = stages(notebooks / "magic.ipynb")
    assert list(s) == ["prepare", "train", "evaluate"]
    t = s["train"]
    assert t.resources == {"gpus": 1, "cpus": 2.0, "memory": 2 * 1024**3, "timeout": 60.0, "retries": 1}
    assert t.cache is False and t.upstream == ["prepare"]
    assert g.roles[3][0] == "setup" and g.roles[4][0] == "skip"


def test_in_place_changes_define_the_name(notebooks):
    g, s = stages(notebooks / "mutation.ipynb")
    # features changes train/test through the loop alias, items.append, counter +=, config[...] =
    assert set(s["features"].outputs) >= {"train", "test", "items", "counter", "config"}
    assert s["use"].inputs["test"] == "features"
    assert s["use"].inputs["items"] == "features" and s["use"].inputs["counter"] == "features"
    # drop(..., inplace=True) in clean: the latest train comes from clean
    assert s["use"].inputs["train"] == "clean"


def test_ipython_syntax_does_not_break_analysis(notebooks):
    g, s = stages(notebooks / "ipython_syntax.ipynb")
    assert s["b"].inputs == {"listing": "a", "y": "a"}  # %%time body analysed, x? and !cmd ignored


def test_implicit_first_stage_is_announced(notebooks):
    g, s = stages(notebooks / "implicit.ipynb")
    assert s["start"].implicit and s["start"].cells == [1]
    assert [w.code for w in g.warnings] == ["implicit-stage"]
    assert g.warnings[0].cell_index == 1


def test_graph_json_shape(notebooks):
    g = api.graph(notebooks / "tags_all.ipynb")
    assert g["schema"] == "nbops.graph/1"
    assert set(g) == {"schema", "notebook", "stages", "edges", "parameters", "cells", "warnings", "errors"}
    stage = g["stages"][1]
    assert set(stage) == {"name", "cells", "implicit", "upstream", "inputs", "outputs", "parameters", "setup_cells", "metrics", "resources", "cache"}
    edge = next(e for e in g["edges"] if e["target"] == "train")
    assert edge == {"source": "make", "target": "train", "variables": ["total"], "explicit": False}
    assert {c["role"] for c in g["cells"]} >= {"parameters", "setup", "stage", "skip", "metrics"}


def test_graph_from_unsaved_content(notebooks):
    import json

    content = json.loads((notebooks / "magic.ipynb").read_text())
    content["cells"][5]["source"] = "%%stage evaluate\nresult = sum(weights) + extra"
    g = api.graph("magic.ipynb", content=content)
    assert g["errors"] and g["errors"][0]["cell"] == 5 and "extra" in g["errors"][0]["message"]


def test_modules_are_reimported_not_shipped():
    import nbformat

    doc = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("import json\nraw = json.dumps([1])", metadata={"tags": ["stage:a"]}),
            nbformat.v4.new_code_cell("back = json.loads(raw)", metadata={"tags": ["stage:b"]}),
        ]
    )
    g = api.load_graph("inline.ipynb", content=doc)
    b = g.stage("b")
    assert b.inputs == {"raw": "a"} and b.reimports == {"json": "import json"}
