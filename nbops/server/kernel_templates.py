"""Warm kernel templates for runs started from the panel.

The Jupyter server is long-lived, so it owns its templates itself (no daemon):
``api.run`` inside the server forks its stages' kernels from templates that are
children of the server process, kept between runs and closed when it stops (a
template also exits by itself when its owner is gone). ``NBOPS_FORK=0`` turns
forking off; runs then use the warm kernel pool and say so.
"""

from __future__ import annotations

from typing import Any

__all__ = ["setup"]


def setup(server_app: Any) -> None:
    from nbops.execute import forkserver

    forkserver.use_daemon(False)  # this process lives long: its templates stay here
    templates = forkserver.own_templates()
    server_app.log.info("nbops: kernel templates kept in %s", templates.root)
