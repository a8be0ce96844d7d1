"""Ctrl-C and SIGKILL done for real, on a real ``nbops run`` process: wherever the
signal lands the run stops within seconds, is recorded interrupted, leaves no
kernel and no temp folder behind, and ``nbops resume`` completes it; what a
killed run leaves is cleaned by the next run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from ..conftest import NBOPS, run_cli

# The sleeping stage writes "started" once its cell runs, then waits while "hold" exists.
SLEEPER = """
import os, time
open("started", "w").close()
t0 = time.time()
while os.path.exists("hold") and time.time() - t0 < 120:
    time.sleep(0.1)
x = 41
"""


def _notebook(folder: Path, kernel: str = "python3") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(SLEEPER, metadata={"tags": ["stage:slow"]}),
        nbformat.v4.new_code_cell("y = x + 1", metadata={"tags": ["stage:after"]}),
    ]
    path = folder / "sleepy.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def env(tmp_path: Path):
    """A private temp folder (short: kernel sockets need short paths) and a kernel
    that takes 4 s to start, for a Ctrl-C that lands while it starts."""
    tmp = Path(tempfile.mkdtemp(prefix="nbi"))
    spec = tmp_path / "jupyter" / "kernels" / "slowpy"
    spec.mkdir(parents=True)
    boot = "import time; time.sleep(4); from ipykernel.kernelapp import launch_new_instance; launch_new_instance()"
    (spec / "kernel.json").write_text(
        json.dumps({"argv": [sys.executable, "-c", boot, "-f", "{connection_file}"], "display_name": "slow", "language": "python"})
    )
    base = {k: v for k, v in os.environ.items() if k != "NBOPS_STORE"}  # the store beside the notebook
    yield {**base, "TMPDIR": str(tmp), "JUPYTER_PATH": str(tmp_path / "jupyter")}
    subprocess.run(["rm", "-rf", str(tmp)])


def _start(nb: Path, env: dict) -> subprocess.Popen:
    (nb.parent / "hold").touch()
    return subprocess.Popen([*NBOPS, "run", str(nb)], cwd=nb.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(what, timeout: float = 90, proc: subprocess.Popen | None = None) -> None:
    end = time.time() + timeout
    while not what():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"nbops exited early ({proc.returncode}): {proc.communicate()}")
        assert time.time() < end, "timed out waiting"
        time.sleep(0.05)


def _run_recorded(nb: Path) -> bool:
    db = nb.parent / ".nbops" / "runs.db"
    if not db.exists():
        return False
    try:
        with sqlite3.connect(db) as c:
            return c.execute("SELECT count(*) FROM stages").fetchone()[0] > 0
    except sqlite3.Error:  # being created
        return False


def _kernels(env: dict) -> list[str]:
    """Kernel processes started from this test's temp folder (their connection file is in it)."""
    ps = subprocess.run(["ps", "-ww", "-eo", "pid,stat,args"], capture_output=True, text=True).stdout.splitlines()
    return [line for line in ps if env["TMPDIR"] in line and "ps -ww" not in line and " Z" not in line]


def _leftovers(env: dict) -> list[Path]:
    return [p for p in Path(env["TMPDIR"]).rglob("*") if p.is_dir() and p.name.startswith("nbops-k")]


def _interrupt(proc: subprocess.Popen, times: int = 1) -> tuple[float, int, str]:
    sent = time.time()
    for _ in range(times):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.1)
    _, err = proc.communicate(timeout=30)
    return time.time() - sent, proc.returncode, err


def _runs(nb: Path, env: dict) -> list[dict]:
    done = run_cli("runs", "ls", "--notebook", str(nb), "--json", cwd=nb.parent, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _check_stopped_cleanly(nb: Path, env: dict) -> str:
    _wait_for(lambda: not _kernels(env), timeout=5)
    assert not _leftovers(env)
    runs = _runs(nb, env)
    assert [r["status"] for r in runs] == ["interrupted"]
    assert not (nb.parent / ".nbops" / "runs" / runs[0]["id"] / "artifacts").exists()
    return runs[0]["id"]


def _resume_completes(nb: Path, env: dict, run_id: str) -> None:
    (nb.parent / "hold").unlink(missing_ok=True)
    done = run_cli("resume", run_id, "--notebook", str(nb), "--json", cwd=nb.parent, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "succeeded"
    assert not _leftovers(env) and not _kernels(env)


def test_ctrl_c_mid_cell(tmp_path: Path, env: dict):
    nb = _notebook(tmp_path)
    proc = _start(nb, env)
    _wait_for(lambda: (tmp_path / "started").exists(), proc=proc)
    seconds, code, err = _interrupt(proc)
    assert seconds < 5, err
    assert code == 130, err
    assert "interrupted" in err and "Traceback" not in err
    _resume_completes(nb, env, _check_stopped_cleanly(nb, env))


def test_ctrl_c_while_the_kernel_starts(tmp_path: Path, env: dict):
    nb = _notebook(tmp_path, kernel="slowpy")
    proc = _start(nb, env)
    _wait_for(lambda: _run_recorded(nb) and _kernels(env), proc=proc)
    assert not (tmp_path / "started").exists()
    seconds, code, err = _interrupt(proc)
    assert seconds < 5, err
    assert code == 130, err
    _resume_completes(nb, env, _check_stopped_cleanly(nb, env))


def test_a_second_ctrl_c_quits_at_once_and_the_next_run_cleans_up(tmp_path: Path, env: dict):
    nb = _notebook(tmp_path)
    proc = _start(nb, env)
    _wait_for(lambda: (tmp_path / "started").exists(), proc=proc)
    seconds, code, err = _interrupt(proc, times=2)
    assert seconds < 2, err
    assert code == 130, err
    assert "quitting now" in err
    _wait_for(lambda: not _kernels(env), timeout=5)  # the kernel sees its parent gone and quits
    runs = _runs(nb, env)
    assert [r["status"] for r in runs] == ["interrupted"]
    _resume_completes(nb, env, runs[0]["id"])
    assert not (nb.parent / ".nbops" / "runs" / runs[0]["id"] / "artifacts").exists()


def test_sigkill_mid_stage_leftovers_are_cleaned_by_the_next_run(tmp_path: Path, env: dict):
    nb = _notebook(tmp_path)
    proc = _start(nb, env)
    _wait_for(lambda: (tmp_path / "started").exists(), proc=proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert _leftovers(env), "a killed run leaves its kernel folder (or this test tests nothing)"
    [dead] = _runs(nb, env)
    assert dead["status"] == "interrupted"
    artifacts = nb.parent / ".nbops" / "runs" / dead["id"] / "artifacts"
    partial = nb.parent / ".nbops" / "runs" / dead["id"] / "notebooks"
    assert artifacts.is_dir() and list(partial.glob("*.ipynb")), "the running stage's partial notebook is there"
    _wait_for(lambda: not _kernels(env), timeout=5)
    (tmp_path / "hold").unlink()
    done = run_cli("run", str(nb), "--json", cwd=nb.parent, env=env)
    assert done.returncode == 0, done.stderr
    assert not _leftovers(env) and not artifacts.exists()
    assert not partial.exists(), "a partial, unscrubbed executed notebook never stays"
    assert not list(Path(env["TMPDIR"]).glob("nbops-*/*")), "the dead process's folder is removed"
