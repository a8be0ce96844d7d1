"""The tag vocabulary one cell at a time: the %%stage line, Kale's tags as Kale reads them."""

from __future__ import annotations

import pytest

from nbops.notebook import TagError, parse_stage_magic, read_cell_tags


def test_magic_parse_errors_are_usage_messages():
    with pytest.raises(TagError, match="--gpus: expected one argument") as info:
        parse_stage_magic("%%stage train --gpus")
    assert info.value.fix.startswith("%%stage NAME")
    with pytest.raises(TagError, match="not a valid identifier"):
        parse_stage_magic("%%stage ../x")
    with pytest.raises(TagError, match="not a number"):
        read_cell_tags(["stage:a", "gpus:lots"])


# -- Kale's tags, read the way Kale reads them ---------------------------------------


@pytest.mark.parametrize("tag", ["block:", "step:"])
def test_empty_kale_stage_tag_is_no_stage_tag(tag):
    tags = read_cell_tags([tag])
    assert tags.stage is None and tags.role is None
    assert [n.code for n in tags.notes] == ["empty-stage-tag"]


def test_empty_nbops_stage_tag_is_still_an_error():
    with pytest.raises(TagError, match="not a valid identifier"):
        read_cell_tags(["stage:"])


@pytest.mark.parametrize("role_tag, role", [("skip", "skip"), ("imports", "setup"), ("functions", "setup"), ("pipeline-parameters", "parameters")])
def test_special_tag_wins_over_the_rest_of_the_cell(role_tag, role):
    tags = read_cell_tags(["block:train", role_tag, "prev:load", "limit:nvidia.com/gpu:1", "annotation:team:ml", "label:tier:gold"])
    assert tags.role == role
    assert tags.stage is None and tags.after == [] and tags.resources == {}
    assert tags.annotations == {} and tags.labels == {}
    assert [n.code for n in tags.notes] == ["ignored-tags"]
    assert "stage, after, resource, annotation, label" in tags.notes[0].message


def test_metrics_cell_keeps_its_stage_tag():
    tags = read_cell_tags(["metrics", "stage:report"])  # nbops: a metrics cell belongs to its stage
    assert tags.role == "metrics" and tags.stage == "report" and not tags.notes


def test_annotation_and_label_tags():
    tags = read_cell_tags(["step:train", "annotation:example.com/owner:team:ml", "label:tier:gold", "label:empty:"])
    assert tags.annotations == {"example.com/owner": "team:ml"}  # the value keeps its colons
    assert tags.labels == {"tier": "gold", "empty": ""}
    assert tags.unknown == []


@pytest.mark.parametrize("tag", ["annotation:no-value", "label:bad key:v", "annotation:/x:v"])
def test_malformed_annotation_or_label_is_a_tag_error(tag):
    with pytest.raises(TagError) as info:
        read_cell_tags(["step:a", tag])
    assert "KEY:VALUE" in info.value.fix
