"""The Ray tests' one cluster: started once per session, by the first test that asks.

Modules run in name order; test_ray_executor.py kills the worker node in its
last test, so modules that need both nodes sort before it.
"""

from __future__ import annotations

import pytest
from harness import GB, WHY_NOT, NetnsRayCluster


@pytest.fixture(scope="session")
def cluster():
    if WHY_NOT is not None:
        pytest.skip(WHY_NOT)
    # 1 CPU per node: two 1-CPU stages cannot share a node. Only the worker
    # node has the memory the lost_node notebook's victim stage asks for.
    c = NetnsRayCluster(cpus=1, gpus=1, head_memory=1 * GB, worker_memory=3 * GB)
    c.start()
    try:
        yield c
    finally:
        c.stop()
