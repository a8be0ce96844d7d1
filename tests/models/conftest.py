"""Trained models the registry tests share: each example run once per session.

The fixtures register ``churn`` (v1, alias ``production``) and ``digits`` (v1);
tests that register, promote or roll back use model names of their own, so the
shared ones stay as described here.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import EXAMPLES


def _trained(tmp_path_factory, example: str, params: dict, stage: str, var: str, name: str, alias: str | None) -> SimpleNamespace:
    from nbops import api, models

    folder = tmp_path_factory.mktemp(name)
    nb = folder / example
    shutil.copy(EXAMPLES / example, nb)
    run = api.run(nb, params)
    assert run["status"] == "succeeded", run
    version = models.register(run["id"], stage, var, name, near=nb)
    if alias:
        models.promote(name, version["version"], alias, near=nb)
    return SimpleNamespace(folder=folder, notebook=nb, store=folder / ".nbops", run=run, version=version, name=name)


@pytest.fixture(scope="session")
def churn(tmp_path_factory) -> SimpleNamespace:
    """The churn example (2,000 customers, 20 trees), its model registered as churn v1 @production."""
    return _trained(tmp_path_factory, "churn.ipynb", {"n_customers": 2000, "n_estimators": 20}, "train", "model", "churn", "production")


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> SimpleNamespace:
    """The torch digits example (default parameters: its accuracy check needs the 15 epochs), its network registered as digits v1."""
    pytest.importorskip("torch")
    return _trained(tmp_path_factory, "digits_torch.ipynb", {}, "train", "net", "digits", None)


def churn_frame(churn: SimpleNamespace, rows: int | None = None):
    """The churn features (X_test of the fixture's run) as the model takes them."""
    from nbops import api
    from nbops.models.registry import load_object, open_registry

    run = api.get_run(churn.run["id"], path=churn.notebook)
    meta = next(s for s in run["stages"] if s["name"] == "features")["outputs"]["X_test"]
    rs, _ = open_registry(near=churn.notebook)
    frame = load_object(rs, meta["sha256"], meta["file"], meta["serializer"], meta.get("bytes"))
    return frame if rows is None else frame.head(rows)


def wait_until_healthy(proc, client, what: str, timeout: float = 120) -> None:
    """Poll ``GET /health`` of a started ``nbops serve`` process until it answers 200;
    fail with the process's stderr if it exits first, or after ``timeout`` seconds."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            if client.get("/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{what} did not answer"
        time.sleep(0.2)


__all__ = ["churn_frame", "wait_until_healthy", "Path"]
