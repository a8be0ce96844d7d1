"""Kernels forked from a warm template: fresh per stage, safe, recorded, rebuilt when the environment moves.

Runs here use this process's own templates (``forkserver.own_templates``), as a
script or the Jupyter server does; the daemon's are in test_daemon.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from nbops import api
from nbops.execute import forkserver
from nbops.execute.forkserver import TemplateSet, TemplateUnavailable, plan, request
from nbops.execute.kernels import shutdown_kernel, start_kernel
from tests.conftest import build_notebook

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="templates fork: Linux only")


@pytest.fixture
def own_templates(monkeypatch):
    monkeypatch.delenv("NBOPS_FORK", raising=False)
    forkserver.use_daemon(False)
    forkserver.close_own_templates()  # earlier tests' runs in this process made theirs: start from none
    yield forkserver.own_templates()
    forkserver.use_daemon(None)
    forkserver.close_own_templates()


def _workers(result: dict) -> dict[str, dict]:
    return {s["name"]: s["worker"] for s in api.show(result["run_id"], notebook=result["notebook"])["stages"]} if "notebook" in result else {}


def _run_workers(nb) -> dict[str, dict]:
    result = api.run(nb, no_cache=True)
    assert result["status"] == "succeeded", result
    return {s["name"]: s.get("worker") or {} for s in result["stages"]}


def test_a_stage_cannot_touch_the_next_one_forked_from_the_same_template(tmp_path, own_templates):
    """Globals, a monkeypatched module, the working folder, the random state: none reach the next stage."""
    here = str(tmp_path)
    (tmp_path / "away").mkdir()
    nb = build_notebook(tmp_path, [
        ("import os, random, textwrap\nimport numpy as np", ["setup"]),
        ("LEAK = 1\ntextwrap.dedent = None\nos.chdir('away')\nr1 = random.random()\nn1 = float(np.random.rand())", ["stage:one"]),
        (f"assert 'LEAK' not in globals()\nassert textwrap.dedent is not None\nassert os.getcwd() == {here!r}, os.getcwd()\n"
         "r2 = random.random()\nn2 = float(np.random.rand())\nassert r2 != r1 and n2 != n1, 'same random state as the stage before'", ["stage:two"]),
    ])  # fmt: skip
    workers = _run_workers(nb)
    assert {w["kernel_start"] for w in workers.values()} == {"fork"}, workers
    assert workers["one"]["template"] == workers["two"]["template"]
    assert workers["one"]["kernel_pid"] != workers["two"]["kernel_pid"]
    assert workers["one"]["fork_ms"] < 1000
    [status] = [t for t in own_templates.status() if t["id"] == workers["one"]["template"]]
    assert {"numpy", "textwrap"} <= set(status["imports"]) and status["forks"] >= 2


def test_forced_fallback_is_recorded(tmp_path, own_templates, monkeypatch):
    monkeypatch.setenv("NBOPS_FORK", "0")
    nb = build_notebook(tmp_path, [("a = 1", ["stage:one"]), ("b = a + 1", ["stage:two"])])
    workers = _run_workers(nb)
    assert {w["kernel_start"] for w in workers.values()} == {"pool"}
    assert {w["reason"] for w in workers.values()} == {"NBOPS_FORK=0"}
    assert own_templates.status() == []  # no template was made


def _spec(folder, cwd):
    spec, reason = plan("python3", folder, cwd)
    assert spec is not None, reason
    return spec


def test_template_rebuilt_when_the_environment_changes(tmp_path, monkeypatch):
    """A module installed into a site folder on the path: the import set changes; another
    package installed there: same imports, new stamp, and the old template is replaced."""
    site, nbdir = tmp_path / "site", tmp_path / "nb"
    site.mkdir()
    nbdir.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    build_notebook(nbdir, [("import fresh_mod", ["stage:one"])])
    assert "fresh_mod" not in _spec(nbdir, str(nbdir)).imports  # not installed yet: the kernel would fail on it itself
    (site / "fresh_mod.py").write_text("VALUE = 1\n")
    first = _spec(nbdir, str(nbdir))
    assert "fresh_mod" in first.imports
    ts = TemplateSet(tmp_path / "tpl")
    try:
        h1 = ts.get(first)
        assert "fresh_mod" in h1["imports"]
        time.sleep(0.01)  # an mtime tick
        (site / "other_pkg.py").write_text("X = 2\n")
        second = _spec(nbdir, str(nbdir))
        assert second.slot == first.slot and second.id != first.id
        h2 = ts.get(second)
        assert h2["id"] != h1["id"] and h2["pid"] != h1["pid"]
        assert [s["id"] for s in ts.status()] == [h2["id"]]
        with pytest.raises(ProcessLookupError):  # the stale template is gone
            for _ in range(100):
                os.kill(h1["pid"], 0)
                time.sleep(0.05)
    finally:
        ts.close()


def test_an_import_that_starts_threads_means_no_template(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "thready.py").write_text("import threading, time\nthreading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    build_notebook(tmp_path, [("import thready", ["setup"]), ("a = 1", ["stage:one"])])
    ts = TemplateSet(tmp_path / "tpl")
    try:
        with pytest.raises(TemplateUnavailable, match="threads"):
            ts.get(_spec(tmp_path, str(tmp_path / "elsewhere")))
    finally:
        ts.close()


def test_torch_in_the_template_never_initializes_cuda(tmp_path):
    """CUDA belongs to the forked kernel only. (This machine has no GPU: there
    ``is_initialized`` is False in the kernel too; on a GPU host the kernel initializes it.)"""
    pytest.importorskip("torch")
    build_notebook(tmp_path, [("import torch", ["setup"]), ("a = 1", ["stage:one"])])
    ts = TemplateSet(tmp_path / "tpl")
    try:
        handle = ts.get(_spec(tmp_path, str(tmp_path / "elsewhere")))
        assert "torch" in handle["imports"]
        info = request(handle["socket"], {"op": "info"})
        assert info["cuda_initialized"] is False and info["python_threads"] == 1
        km = start_kernel("python3", str(tmp_path), template=handle)
        try:
            kc = km.blocking_client()
            kc.start_channels()
            out = []
            kc.execute_interactive("import torch; print(torch.cuda.is_available(), torch.cuda.is_initialized())", timeout=30,
                                   output_hook=lambda m: out.append(m["content"].get("text", "")))  # fmt: skip
            kc.stop_channels()
        finally:
            shutdown_kernel(km)
        assert "".join(out).split()[1] == str(torch_cuda_used()), out
    finally:
        ts.close()


def torch_cuda_used() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_initialized()


def test_template_sockets_are_private(tmp_path):
    build_notebook(tmp_path, [("a = 1", ["stage:one"])])
    ts = TemplateSet(tmp_path / "tpl")
    try:
        handle = ts.get(_spec(tmp_path, str(tmp_path / "elsewhere")))
        assert os.stat(handle["socket"]).st_mode & 0o077 == 0
        assert os.stat(os.path.dirname(handle["socket"])).st_mode & 0o077 == 0
        assert request(handle["socket"], {"op": "nonsense"})["error"].startswith("unknown op")
    finally:
        ts.close()


@pytest.mark.skipif(os.getuid() != 0 or not os.path.exists("/usr/bin/python3"), reason="needs root (to act as another user) and a system python")
def test_another_user_gets_no_kernel_even_through_an_open_socket(tmp_path):
    """The folder (0700) and socket (0600) keep others out; were they opened up, the
    peer's uid (SO_PEERCRED) still is: another user is refused, nothing is forked."""
    import shutil
    import tempfile

    build_notebook(tmp_path, [("a = 1", ["stage:one"])])
    root = tempfile.mkdtemp(prefix="nbops-peercred-", dir="/tmp")  # pytest's tmp_path sits in a folder only root may enter
    ts = TemplateSet(os.path.join(root, "tpl"))
    try:
        handle = ts.get(_spec(tmp_path, str(tmp_path / "elsewhere")))
        for folder in (root, os.path.join(root, "tpl"), os.path.dirname(handle["socket"])):
            os.chmod(folder, 0o711)
        os.chmod(handle["socket"], 0o666)
        code = (
            "import json, socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n"
            "try:\n    s.sendall(json.dumps({'op': 'fork', 'connection_file': '/tmp/x', 'cwd': '/', 'env': {}, 'log': '/dev/null'}).encode() + b'\\n')\n"
            "except BrokenPipeError:\n    pass  # refused before it finished asking\n"
            "print(s.recv(1000).decode())"
        )
        out = subprocess.run(["/usr/bin/python3", "-c", code, handle["socket"]], user=65534, capture_output=True, text=True, timeout=30)
        assert "not your template" in out.stdout, out.stderr
        assert request(handle["socket"], {"op": "info"}).get("forks", 0) == 0
    finally:
        ts.close()
        shutil.rmtree(root, ignore_errors=True)


def test_template_with_pandas_and_scikit_learn_stays_under_500_mb(tmp_path):
    build_notebook(tmp_path, [("import pandas as pd\nfrom sklearn.ensemble import RandomForestClassifier", ["setup"]), ("a = 1", ["stage:one"])])
    ts = TemplateSet(tmp_path / "tpl")
    try:
        handle = ts.get(_spec(tmp_path, str(tmp_path / "elsewhere")))
        assert {"pandas", "sklearn.ensemble"} <= set(handle["imports"])
        assert request(handle["socket"], {"op": "info"})["rss"] < 500 * 2**20
    finally:
        ts.close()


def test_a_killed_template_is_made_again(tmp_path, own_templates):
    import signal

    nb = build_notebook(tmp_path, [("a = 1", ["stage:one"])])
    first = _run_workers(nb)["one"]
    [status] = own_templates.status()
    os.kill(status["pid"], signal.SIGKILL)  # not waited for: the next run may still see it alive, and asks again
    second = _run_workers(nb)["one"]
    assert first["kernel_start"] == second["kernel_start"] == "fork", second.get("reason")
    assert own_templates.status()[0]["pid"] != status["pid"]
