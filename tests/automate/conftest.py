"""Shared fixtures for the automation tests.

``tiny``: a folder with ``tiny.ipynb`` (two stages, a second or two with a warm
machine) and its own embedded store at ``<folder>/.nbops``; NBOPS_STORE is
unset. Parameters steer a run from the schedule:

- ``fail=True``: stage ``b`` raises (a failed run);
- ``gate="/path"``: stage ``b`` waits until that file exists (up to 120 s), so a
  test can kill or stop a scheduler while a run is surely in the middle;
- ``tag``: any string, recorded in the run's parameters.

``ss``: the ScheduleStore of that store. ``add_schedule(ss, name, notebook, trigger,
**fields)`` adds one (created_at as given: clocks are injected).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import build_notebook

TINY_CELLS = [
    ("fail = False\ngate = ''\ntag = ''", ["parameters"]),
    ("x = 41", ["stage:a"]),
    (
        "import os, time\n"
        "deadline = time.time() + 120\n"
        "while gate and not os.path.exists(gate) and time.time() < deadline:\n"
        "    time.sleep(0.1)\n"
        "assert not fail, 'asked to fail'\n"
        "y = x + 1",
        ["stage:b"],
    ),
]


@dataclass
class Tiny:
    folder: Path
    notebook: Path
    store: Path


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tiny:
    monkeypatch.delenv("NBOPS_STORE", raising=False)
    monkeypatch.delenv("NBOPS_OBJECTS", raising=False)
    folder = tmp_path / "proj"
    folder.mkdir()
    nb = build_notebook(folder, TINY_CELLS, "tiny.ipynb")
    return Tiny(folder, nb, folder / ".nbops")


@pytest.fixture
def ss(tiny: Tiny):
    from nbops.store import open_store
    from nbops.store.schedules import ScheduleStore

    return ScheduleStore(open_store(str(tiny.store), None))


def add_schedule(ss, name: str, notebook: Path, trigger: dict, *, created_at: float | None = None, **fields) -> dict:
    ss.add(name, notebook=str(notebook), trigger=trigger, **fields)
    if created_at is not None:
        # created_at anchors intervals and starts planning; ``add`` stamps the wall clock.
        import sqlalchemy as sa

        from nbops.store.schema import schedules

        with ss.db.write() as c:
            c.execute(sa.update(schedules).where(schedules.c.name == name).values(created_at=created_at))
    return ss.get(name)


class SchedulerProcess:
    """``nbops scheduler`` as a real process in its own process group (so a test can
    kill -9 it and its workers together, as a machine dying would)."""

    def __init__(self, store: Path | str, *args: str, log: Path, cwd: Path | None = None):
        self.log = log
        self._out = open(log, "ab")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("NBOPS_STORE", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nbops.cli.main", "scheduler", "--store", str(store), *args],
            stdout=self._out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=cwd or log.parent,
        )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill9(self, group: bool = True) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL) if group else self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill9()
        self._out.close()


@pytest.fixture
def scheduler_process(tmp_path: Path):
    """Start ``nbops scheduler`` processes; every one still running is killed at the end."""
    started: list[SchedulerProcess] = []

    def start(store: Path | str, *args: str, cwd: Path | None = None) -> SchedulerProcess:
        p = SchedulerProcess(store, *args, log=tmp_path / f"scheduler-{len(started)}.log", cwd=cwd)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def wait_for(predicate, timeout: float = 60.0, every: float = 0.1, what="a condition"):
    """Poll ``predicate`` until it returns a truthy value; fail naming ``what`` (a text, or a
    function giving one: a process's log read at the time of failure) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what() if callable(what) else what}")


def dump(obj) -> str:
    return json.dumps(obj, indent=1, default=str)
