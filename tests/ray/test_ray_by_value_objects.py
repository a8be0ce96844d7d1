"""Objects whose classes the notebook defines cross stages on the Ray executor too.

The torch and scikit-learn fixtures of tests/execute/test_objects.py (an
nn.Module from a setup cell; a pipeline with a transformer class defined in the
train stage and a lambda) run as Ray tasks on the namespaced 2-node cluster of
test_ray_executor.py (its fixture and driver, reused): the consumer's kernel on
a Ray worker has no copy of the class, and must not need one.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import WHY_NOT, drive  # noqa: E402

# The first test also starts this module's cluster, which on a loaded machine may take
# minutes (netns_cluster retries `ray start`): more than pyproject's 300 s per test.
pytestmark = [pytest.mark.ray, pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or ""), pytest.mark.timeout(1200)]

FIXTURES = HERE.parent / "notebooks"


@pytest.fixture(scope="module")
def nbdir(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("rayobjects")
    for name in ("objects_torch", "objects_sklearn"):
        shutil.copy(FIXTURES / f"{name}.ipynb", dest)
    return dest


@pytest.mark.parametrize(
    "name, consumer_metric, producer_metric, producer, variable, serializer",
    [
        ("objects_torch", "mse", "mse_in_train", "train", "net", "torch"),
        ("objects_sklearn", "accuracy", "score_in_train", "train", "pipe", "sklearn"),
    ],
)
def test_notebook_defined_objects_cross_ray_tasks(cluster, nbdir, name, consumer_metric, producer_metric, producer, variable, serializer):
    run = drive(cluster, nbdir / f"{name}.ipynb", "--executor", "ray", "--no-cache", timeout=420)
    assert run["status"] == "succeeded", json.dumps([s["error"] for s in run["stages"] if s["error"]], indent=1)[-4000:]
    assert run["executor"]["name"] == "ray"
    made = next(s for s in run["stages"] if s["name"] == producer)
    assert made["outputs"][variable]["serializer"] == serializer
    # The consumer scored with the very object the producer trained.
    assert run["metrics"][consumer_metric] == run["metrics"][producer_metric]
