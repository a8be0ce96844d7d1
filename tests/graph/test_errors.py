"""Every notebook error: names the cell and the fix, exit code 2, no traceback, file untouched."""

from __future__ import annotations

import hashlib

import pytest

CASES = [
    ("err_bad_json", None, "is not valid JSON"),
    ("err_nbformat3", None, "nbformat 3"),
    ("err_no_stages", None, "has no stages"),
    ("err_unknown_after", 1, "after:nope names no stage"),
    ("err_cycle", 0, "cycle: a -> b -> a"),
    ("err_after_cycle", 0, "cycle"),
    ("err_undefined", 1, "'missing_name', which no cell"),
    ("err_read_before_defined", 0, "reads 'later' before any stage defines it"),
    ("err_skip_only", 1, "only a 'skip' cell"),
    ("err_syntax", 1, "does not parse"),
    ("err_bad_stage_name", 0, "'../../x'"),
    ("err_two_parameters", 1, "a second parameters cell"),
    ("err_conflicting_resources", 1, "conflicting gpus tags"),
    ("err_param_not_literal", 0, "not a literal"),
]


@pytest.mark.parametrize("name, cell, text", CASES)
@pytest.mark.parametrize("command", ["graph", "convert"])
def test_error_names_cell_and_fix(cli, notebooks, tmp_path, name, cell, text, command):
    path = notebooks / f"{name}.ipynb"
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    args = [command, str(path)] + (["-o", str(tmp_path / "out")] if command == "convert" else [])
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert text in result.stderr
    assert "fix:" in result.stderr
    assert str(path) in result.stderr
    if cell is not None:
        assert f"cell {cell} (" in result.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    if command == "convert":
        assert not (tmp_path / "out" / "pipeline.yaml").exists()


def test_missing_file_is_a_clear_error(cli, tmp_path):
    result = cli("graph", str(tmp_path / "nope.ipynb"))
    assert result.returncode == 2 and "not found" in result.stderr and "Traceback" not in result.stderr
