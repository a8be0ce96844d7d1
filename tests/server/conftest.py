"""Fixtures for the server routes: a real Jupyter server with nbops enabled.

pytest-jupyter's fixtures are imported here rather than named in
``pytest_plugins`` (which pytest accepts only in the top-level conftest).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pytest_jupyter.jupyter_server import *

NOTEBOOKS = Path(__file__).resolve().parents[1] / "browser" / "notebooks"


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"nbops": True}}}


@pytest.fixture
def pipeline_notebook(jp_root_dir: Path) -> str:
    """The small 3-stage notebook copied into the server root; its root-relative path."""
    (jp_root_dir / "work").mkdir()
    shutil.copy(NOTEBOOKS / "small_pipeline.ipynb", jp_root_dir / "work" / "small_pipeline.ipynb")
    return "work/small_pipeline.ipynb"
