"""Every stage's kernel client is stopped with its kernel: nothing of it outlives the run.

papermill, given a kernel it does not own, leaves the client it made running
(a heartbeat thread and its zmq sockets). In a long-lived process (the Jupyter
server, a sweep, the test suite) those piled up until zmq ran out of sockets
and aborted the process.
"""

from __future__ import annotations

import threading

from nbops import api
from tests.conftest import build_notebook


def _heartbeats() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if type(t).__name__ == "HBChannel"]


def test_no_client_threads_outlive_a_run(tmp_path):
    before = len(_heartbeats())
    nb = build_notebook(tmp_path, [("a = 1", ["stage:one"]), ("b = a + 1", ["stage:two"]), ("c = b * 2", ["stage:three"])])
    for _ in range(2):
        assert api.run(nb, no_cache=True)["status"] == "succeeded"
    assert len(_heartbeats()) == before
