"""What a stage records about itself: metrics, artifacts, in files the driver reads back."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import nbops
from nbops.runtime import context


@pytest.fixture(autouse=True)
def no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "_current", None)  # the context is module-global


def test_many_metrics_are_read_back_in_order_and_the_file_is_closed_when_the_stage_ends(tmp_path: Path):
    ctx = context.begin_stage("train", tmp_path)
    for i in range(2000):
        nbops.log_metric("loss", 1 / (i + 1), step=i)
    nbops.log_metric("auc", float("nan"))
    fd = ctx._fds["metrics"]
    context.finish_stage()
    with pytest.raises(OSError):
        os.fstat(fd)  # closed: the driver reads a complete file, and no descriptor leaks into the next stage
    records = context.read_records(tmp_path / "train", "metrics")
    assert [r["step"] for r in records[:-1]] == list(range(2000)) and records[0] == {"name": "loss", "value": 1.0, "step": 0}
    assert records[-1] == {"name": "auc", "value": "nan", "step": None}  # strict JSON has no NaN


def test_records_go_on_when_the_folder_is_removed_under_the_stage(tmp_path: Path):
    context.begin_stage("s", tmp_path)
    nbops.log_metric("a", 1)
    shutil.rmtree(tmp_path / "s")  # a stage cleaning its output folder
    nbops.log_metric("b", 2)
    assert [r["name"] for r in context.read_records(tmp_path / "s", "metrics")] == ["b"]


def test_a_torn_last_line_is_skipped(tmp_path: Path):
    context.begin_stage("s", tmp_path)
    nbops.log_metric("a", 1)
    context.finish_stage()
    with open(tmp_path / "s" / context.RECORD_DIR / "metrics.jsonl", "a") as fh:
        fh.write('{"name": "b", "val')  # a crash in the middle of a write
    assert [r["name"] for r in context.read_records(tmp_path / "s", "metrics")] == ["a"]


def test_a_long_string_is_logged_as_a_value_not_taken_for_a_path(tmp_path: Path):
    context.begin_stage("s", tmp_path)
    nbops.log_artifact("x" * 1_000_000, "big")  # asking the OS about it would say "File name too long"
    (record,) = context.read_records(tmp_path / "s", "artifacts")
    assert record["name"] == "big" and record["kind"] != "file"
    assert (tmp_path / "s" / "_logged" / record["file"]).stat().st_size >= 1_000_000
