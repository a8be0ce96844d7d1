"""%%stage / %%setup / %%skip and %nbops in a real in-process IPython shell."""

from __future__ import annotations

import os
import time

import pytest
from nbformat.v4 import new_code_cell

from nbops.magics.display import ShownError
from nbops.magics.line import find_notebook

from .conftest import write_notebook


def fresh(ip, *names: str) -> None:
    for name in names:
        ip.user_ns.pop(name, None)


def test_stage_runs_the_body_in_the_user_namespace(ip):
    fresh(ip, "trained")
    ip.user_ns["base"] = 41
    result = ip.run_cell("%%stage train --gpus 1 --after load --memory 2G\ntrained = base + 1\ntrained")
    assert result.success
    assert ip.user_ns["trained"] == 42
    assert ip.user_ns["_"] == 42  # the last expression is displayed like a normal cell's


@pytest.mark.parametrize(
    "line, expected",
    [
        ("%%stage", "the following arguments are required: name"),
        ("%%stage train --gpus x", "gpus:x is not a number"),
        ("%%stage 2train", "is not a valid identifier"),
        ("%%stage train --colour red", "unrecognized arguments: --colour red"),
        ("%%stage 'train", "No closing quotation"),
    ],
)
def test_bad_stage_line_prints_usage_and_does_not_run(ip, capsys, line, expected):
    fresh(ip, "never")
    result = ip.run_cell(f"{line}\nnever = 1")
    err = capsys.readouterr().err
    assert "never" not in ip.user_ns
    assert not result.success  # the cell fails: "Run All" stops here
    assert "UsageError" in err and expected in err
    assert "%%stage NAME [--after A [B ...]] [--gpus N]" in err
    assert "Traceback" not in err


def test_error_in_body_fails_the_cell_once_with_the_body_traceback(ip, capsys):
    result = ip.run_cell("%%stage train\nx = 1\n1 / 0")
    out = capsys.readouterr()
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    text = out.out + out.err
    assert text.count("ZeroDivisionError") == 2  # the header and the last line of ONE traceback
    assert "1 / 0" in text and "run_cell_magic" not in text


def test_skip_and_setup_run_like_normal_cells(ip):
    fresh(ip, "explored", "helper")
    assert ip.run_cell("%%skip\nexplored = [1, 2]\nexplored.append(3)").success
    assert ip.user_ns["explored"] == [1, 2, 3]
    assert ip.run_cell("%%setup\nimport math\nhelper = math.sqrt(16)").success
    assert ip.user_ns["helper"] == 4.0


def test_skip_with_arguments_is_refused(ip, capsys):
    fresh(ip, "never")
    result = ip.run_cell("%%skip now\nnever = 1")
    assert not result.success and "never" not in ip.user_ns
    assert "%%skip takes no arguments" in capsys.readouterr().err


def test_nbops_usage_errors_do_not_raise_systemexit(ip, capsys):
    assert not ip.run_cell("%nbops bogus").success
    assert "invalid choice: 'bogus'" in capsys.readouterr().err
    assert not ip.run_cell("%nbops").success
    assert "needs a command" in capsys.readouterr().err
    assert ip.run_cell("%nbops run -h").success  # help is printed, nothing else happens
    assert "--params-file" in capsys.readouterr().out


def test_graph_notes_the_saved_version_and_warns_about_unsaved_stage_cells(ip, demo):
    view = ip.run_line_magic("nbops", f"graph --notebook {demo}")
    assert [s["name"] for s in view.data["stages"]] == ["prepare", "total"]
    assert view.data["errors"] == []
    assert "as saved at" in view.notices[0] and len(view.notices) == 1
    html, text = view._repr_html_(), repr(view)
    assert "items ← prepare" in text and "items ← prepare" in html and "<table" in html

    os.utime(demo, (time.time() - 10, time.time() - 10))
    ip.user_ns["n"] = 3
    ip.run_cell("%%stage prepare\nitems = list(range(n + 1))")  # edited, run, not saved
    warned = ip.run_line_magic("nbops", f"graph --notebook {demo}")
    assert "warning: the cells of stage prepare ran after that save and differ from the file" in warned.notices[1]

    ip.run_cell("%%stage prepare\nitems = list(range(n))\n")  # back to what the file holds
    assert len(ip.run_line_magic("nbops", f"graph --notebook {demo}").notices) == 1


def test_library_errors_are_a_message_and_a_fix(ip, capsys, tmp_path):
    result = ip.run_cell(f"%nbops graph --notebook {tmp_path / 'missing.ipynb'}")
    assert isinstance(result.error_in_exec, ShownError)
    text = capsys.readouterr()
    shown = text.out + text.err
    assert "missing.ipynb not found" in shown and "fix:" in shown and "Traceback" not in shown

    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    result = ip.run_cell(f"%nbops graph --notebook {bad}")
    assert isinstance(result.error_in_exec, ShownError)
    assert "fix:" in result.error_in_exec._render_traceback_()[1]


def test_run_in_a_terminal_prints_progress_then_the_failed_cell(ip, capsys, tmp_path):
    nb = write_notebook(tmp_path / "fails.ipynb", [
        new_code_cell("%%stage load\nrows = [1, 2]"),
        new_code_cell("%%stage divide\nratio = len(rows) / 0"),
    ])  # fmt: skip
    assert ip.run_cell(f"%nbops run --notebook {nb}").success  # a failed run is a result, not an error
    out = capsys.readouterr().out
    assert "✓ load" in out and "✗ divide" in out
    assert "failed" in out and "ZeroDivisionError" in out and 'cell 1 ("ratio = len(rows) / 0")' in out
    assert "nbops resume" in out

    assert not ip.run_cell(f"%nbops run --notebook {nb} -p nope=1").success
    assert "unknown parameter nope" in capsys.readouterr().out + capsys.readouterr().err


def test_run_inside_a_stage_kernel_is_refused(ip, demo, tmp_path):
    from nbops.runtime import context

    context.begin_stage("prepare", tmp_path / "artifacts")
    try:
        result = ip.run_cell(f"%nbops run --notebook {demo}")
    finally:
        context._current = None
    assert isinstance(result.error_in_exec, ShownError)
    assert "would start the pipeline again" in result.error_in_exec.message and "%%skip" in result.error_in_exec.fix


# -- which notebook -------------------------------------------------------------------------------


def test_notebook_from_jpy_session_name(monkeypatch, tmp_path):
    root = tmp_path / "root"
    nb = write_notebook(root / "sub" / "work.ipynb", [])
    monkeypatch.chdir(root / "sub")  # jupyter_server starts the kernel in the notebook's folder
    monkeypatch.setenv("JPY_SESSION_NAME", str(nb))  # the frontend sent a name: absolute
    assert find_notebook(None) == nb
    monkeypatch.setenv("JPY_SESSION_NAME", "sub/work.ipynb")  # the API path, relative to the root
    assert find_notebook(None).resolve() == nb.resolve()
    monkeypatch.setenv("JPY_SESSION_NAME", "sub/renamed.ipynb")
    with pytest.raises(ShownError, match="renamed or moved") as info:
        find_notebook(None)
    assert "--notebook PATH" in info.value.fix
    assert find_notebook(None, {"__vsc_ipynb_file__": str(nb)}) == nb  # VS Code says it itself
    monkeypatch.delenv("JPY_SESSION_NAME")
    with pytest.raises(ShownError, match="cannot tell which notebook"):
        find_notebook(None)
    assert find_notebook(str(nb)) == nb
    with pytest.raises(ShownError, match="not found"):
        find_notebook(str(root / "nope.ipynb"))
