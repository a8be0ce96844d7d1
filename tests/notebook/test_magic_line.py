"""Finding the ``%%magic`` line of a cell: one finder for tags, analysis, converter and kernel magics."""

from __future__ import annotations

import pytest

from nbops.notebook import cell_magic, parse_stage_magic, pipeline_magic, strip_pipeline_magic


@pytest.mark.parametrize(
    "source, name, args",
    [
        ("%%stage train --gpus 1\nx = 1", "stage", "train --gpus 1"),
        ("\n  \n%%stage\ttrain\nx = 1", "stage", "train"),  # blank lines first, tab after the name
        ("  %%time\nx = 1", "time", ""),
        ("%%\nx", "", ""),
    ],
)
def test_cell_magic_is_the_first_non_blank_line(source, name, args):
    magic = cell_magic(source)
    assert magic is not None and (magic.name, magic.args) == (name, args)
    assert magic.body.endswith("x = 1") or magic.body == "x"


@pytest.mark.parametrize("source", ["x = 1\n%%stage a", "# %%stage a\nx = 1", "%stage a", ""])
def test_no_cell_magic(source):
    assert cell_magic(source) is None and pipeline_magic(source) is None
    assert strip_pipeline_magic(source) == source


def test_only_pipeline_magics_are_stripped():
    assert pipeline_magic("%%time\nx = 1") is None
    assert strip_pipeline_magic("%%time\nx = 1") == "%%time\nx = 1"
    assert strip_pipeline_magic("\n%%skip\n\nprint(1)") == "print(1)"
    assert strip_pipeline_magic("%%stage a --after b\nx = 1\n") == "x = 1\n"


def test_stage_line_parses_the_same_with_or_without_the_magic_name():
    whole = parse_stage_magic("%%stage train --after prep --gpus 1")
    args = parse_stage_magic("train --after prep --gpus 1")  # what IPython hands the magic
    assert (whole.stage, whole.after, whole.resources) == (args.stage, args.after, args.resources) == ("train", ["prep"], {"gpus": 1})
