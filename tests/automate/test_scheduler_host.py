"""The Jupyter server hosts the scheduler when opted in (NBOPS_SCHEDULER=1): a real
``jupyter server`` process runs a firing; stopping the server stops the scheduler
gracefully and loses no schedule; the setting is opt-in."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.automate.conftest import add_schedule, dump, wait_for
from tests.services import free_port


@pytest.fixture
def jupyter(tmp_path: Path):
    started: list[subprocess.Popen] = []

    def start(root: Path, **env: str) -> subprocess.Popen:
        full = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        for d in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
            full[d] = str(tmp_path / d.lower())
        full.pop("NBOPS_STORE", None)
        config = tmp_path / "jupyter_config_dir"
        config.mkdir(exist_ok=True)
        (config / "jupyter_server_config.json").write_text(json.dumps({"ServerApp": {"jpserver_extensions": {"nbops": True}}}))
        log = open(tmp_path / f"jupyter-{len(started)}.log", "wb")  # noqa: SIM115 - the process owns it until it ends
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={free_port()}",
             "--ServerApp.token=t", f"--ServerApp.root_dir={root}"],
            stdout=log, stderr=subprocess.STDOUT, env=full, cwd=root,
        )  # fmt: skip
        proc.log_path = tmp_path / f"jupyter-{len(started)}.log"  # type: ignore[attr-defined]
        started.append(proc)
        return proc

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_the_server_hosts_the_scheduler_and_stops_it_gracefully(tiny, ss, jupyter):
    add_schedule(ss, "hosted", tiny.notebook, {"kind": "every", "seconds": 3600}, created_at=time.time())
    ss.add_firing("hosted", "manual:lab", time.time())
    server = jupyter(tiny.folder, NBOPS_SCHEDULER="1", NBOPS_SCHEDULER_GRACE="5")
    log = lambda: server.log_path.read_text(errors="replace")  # noqa: E731
    wait_for(lambda: ss.schedulers(fresh_s=60) or server.poll() is not None, timeout=90, what=lambda: f"the hosted scheduler's heartbeat\n{log()}")
    assert server.poll() is None, log()
    done = wait_for(lambda: (f := ss.firing("hosted", "manual:lab"))["status"] in ("succeeded", "failed") and f, timeout=120, what=lambda: log())
    assert done["status"] == "succeeded", dump(done)
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)
    assert ss.schedulers() == [], log()  # stopped gracefully: it said goodbye
    assert ss.get("hosted") is not None  # the schedule stays in the store for the next scheduler


def test_the_setting_is_opt_in(monkeypatch):
    from traitlets.config import Config

    from nbops.server.scheduler_host import enabled

    class App:
        config = Config()

    monkeypatch.delenv("NBOPS_SCHEDULER", raising=False)
    assert not enabled(App())
    App.config.NbopsScheduler.enabled = True
    assert enabled(App())
    monkeypatch.setenv("NBOPS_SCHEDULER", "0")  # the environment wins over the config file
    assert not enabled(App())
    monkeypatch.setenv("NBOPS_SCHEDULER", "1")
    App.config = Config()
    assert enabled(App())
