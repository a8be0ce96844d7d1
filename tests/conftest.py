"""Shared fixtures: the fixture notebooks, a CLI runner, a scratch copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
EXAMPLES = ROOT / "example_notebooks"
NBOPS = [sys.executable, "-m", "nbops.cli.main"]


@pytest.fixture(scope="session", autouse=True)
def _private_daemon():
    """The CLI runs of the suite share one `nbops daemon` of their own (a short private
    folder: a Unix socket path is limited), stopped at the end: none outlives the tests,
    and none from another checkout (older code) serves them."""
    import tempfile

    folder = tempfile.mkdtemp(prefix="nbops-d-")
    saved = {k: os.environ.get(k) for k in ("NBOPS_DAEMON_DIR", "NBOPS_DAEMON_IDLE")}
    os.environ.update(NBOPS_DAEMON_DIR=folder, NBOPS_DAEMON_IDLE="120")
    yield
    try:
        from nbops.execute import daemon

        daemon.stop()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def notebooks() -> Path:
    return NOTEBOOKS


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A scratch copy of the fixture notebooks (runs write a store beside them)."""
    dest = tmp_path / "nbs"
    shutil.copytree(NOTEBOOKS, dest, ignore=shutil.ignore_patterns("*.py", "__pycache__", ".nbops"))
    return dest


def build_notebook(folder: Path, cells: list[tuple[str, list[str]]], name: str = "nb.ipynb") -> Path:
    """A small real notebook: one code cell per (source, tags)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src, metadata={"tags": tags}) for src, tags in cells]
    path = folder / name
    nbformat.write(nb, path)
    return path


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("NBOPS_STORE", None) if env is None or "NBOPS_STORE" not in env else None
    return subprocess.run([*NBOPS, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


def pytest_collection_modifyitems(config, items):
    """Browser tests last: Playwright's sync API leaves an asyncio loop running in
    the main thread, which the jupyter_server fixtures of tests/server cannot share."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
