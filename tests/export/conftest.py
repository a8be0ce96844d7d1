"""The orchestrators' tools live in venvs of their own at the repo root (their pins
clash with nbops's): .ci/install-export-tools.sh makes them. A test that needs one
fails, naming that script, when it is missing: a silent skip would hide that the
exports were never validated."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

INSTALL = "bash .ci/install-export-tools.sh"
PROBE = Path(__file__).resolve().parent / "airflow_probe.py"


def _tool(venv: str, module: str) -> Path:
    python = ROOT / venv / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{venv} is missing: the export tests validate with {module} from it; make it with: {INSTALL}", pytrace=False)
    return python


@pytest.fixture(scope="session")
def airflow_python() -> Path:
    return _tool(".venv-airflow", "apache-airflow")


@pytest.fixture(scope="session")
def kfp_python() -> Path:
    return _tool(".venv-kfp", "kfp")


class Airflow:
    """One AIRFLOW_HOME (SQLite metadata, migrated once) and DAGs folder for a test module."""

    def __init__(self, python: Path, home: Path):
        self.python, self.home = python, home
        self.dags = home / "dags"
        self.dags.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        }
        self.env.pop("NBOPS_STORE", None)

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        airflow = self.python.parent / "airflow"
        return subprocess.run([str(airflow), *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def dagbag(self, folder: Path | None = None, run_id: str | None = None, env: dict | None = None) -> dict:
        """Load ``folder`` (default: the DAGs folder) with Airflow's own DagBag; with ``run_id``,
        also each pod task's command line rendered for that run."""
        proc = subprocess.run(
            [str(self.python), str(PROBE), str(folder or self.dags), *([run_id] if run_id else [])],
            env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def airflow(airflow_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Airflow:
    af = Airflow(airflow_python, tmp_path_factory.mktemp("airflow-home"))
    proc = af.cli("db", "migrate", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return af
