"""``nbops daemon``: started on first use, restarted after a kill, never hung by a stale socket.

Every test has its own daemon folder (NBOPS_DAEMON_DIR) and stops its daemon.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from nbops import api
from nbops.execute import daemon, forkserver
from tests.conftest import build_notebook

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="templates fork: Linux only")


@pytest.fixture
def daemon_dir(tmp_path, monkeypatch):
    folder = tmp_path / "d"
    monkeypatch.setenv("NBOPS_DAEMON_DIR", str(folder))
    monkeypatch.delenv("NBOPS_FORK", raising=False)
    monkeypatch.delenv("NBOPS_DAEMON", raising=False)
    yield folder
    pid = _pid(folder)
    daemon.stop()
    if pid:
        _kill(pid)


def _pid(folder) -> int | None:
    try:
        return int((folder / "daemon.pid").read_text())
    except (OSError, ValueError):
        return None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def cli_mode():
    forkserver.use_daemon(True)  # as in the `nbops` process
    yield
    forkserver.use_daemon(None)


def test_runs_fork_from_the_daemon_and_a_killed_daemon_is_restarted(tmp_path, daemon_dir, cli_mode):
    nb = build_notebook(tmp_path, [("import numpy as np", ["setup"]), ("a = float(np.ones(2).sum())", ["stage:one"]), ("b = a + 1", ["stage:two"])])
    first = api.run(nb, no_cache=True)
    assert first["status"] == "succeeded"
    workers = [s["worker"] for s in first["stages"]]
    assert {w["kernel_start"] for w in workers} == {"fork"}, workers
    pid = _pid(daemon_dir)
    assert pid and daemon.status()["templates"][0]["forks"] >= 2
    os.kill(pid, signal.SIGKILL)
    assert _gone(pid)
    assert (daemon_dir / "daemon.sock").exists()  # what a killed daemon leaves
    second = api.run(nb, no_cache=True)
    assert second["status"] == "succeeded"
    assert {s["worker"]["kernel_start"] for s in second["stages"]} == {"fork"}
    assert _pid(daemon_dir) not in (None, pid)


def test_a_stale_socket_never_hangs(daemon_dir):
    daemon_dir.mkdir(mode=0o700)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(daemon_dir / "daemon.sock"))  # bound, never listening, then closed: the file stays, connect is refused
    s.close()
    (daemon_dir / "daemon.pid").write_text("999999")
    t0 = time.monotonic()
    answer = daemon.ensure()
    assert time.monotonic() - t0 < 15
    assert answer["pid"] == _pid(daemon_dir) != 999999


def test_a_daemon_that_does_not_answer_is_replaced(daemon_dir):
    old = daemon.ensure()["pid"]
    os.kill(old, signal.SIGSTOP)  # holds its lock, answers nothing
    try:
        t0 = time.monotonic()
        new = daemon.ensure()["pid"]
        assert time.monotonic() - t0 < daemon.PING_TIMEOUT * 2 + 15
        assert new != old and _gone(old)
    finally:
        _kill(old)


def test_idle_daemon_exits_by_itself(daemon_dir, monkeypatch):
    monkeypatch.setenv("NBOPS_DAEMON_IDLE", "1")
    pid = daemon.ensure()["pid"]
    assert _gone(pid, timeout=15)
    assert not (daemon_dir / "daemon.sock").exists()
    assert daemon.status()["running"] is False


def test_cli_start_status_stop(daemon_dir):
    def nbops(*args):
        out = subprocess.run([sys.executable, "-m", "nbops.cli.main", "daemon", *args, "--json"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    assert nbops("status")["running"] is False
    started = nbops("start")
    assert started["running"] and started["pid"] == _pid(daemon_dir)
    assert os.stat(daemon_dir).st_mode & 0o077 == 0 and os.stat(daemon_dir / "daemon.sock").st_mode & 0o077 == 0
    assert nbops("status")["pid"] == started["pid"]
    assert nbops("stop")["stopped"] is True
    assert _gone(started["pid"])
    assert nbops("status")["running"] is False
