"""The Jupyter server extension: nbops routes under ``/nbops/`` for the lab.

Enabled by ``jupyter-config/server-config/nbops.json`` (installed with the
wheel) or ``--ServerApp.jpserver_extensions='{"nbops": true}'``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

__all__ = ["_load_jupyter_server_extension", "SERVER_PARTS"]

# Schedules (routes, and the scheduler when the setting opts in) and warm kernel
# templates for panel runs.
SERVER_PARTS = ["nbops.server.schedules_routes", "nbops.server.scheduler_host", "nbops.server.kernel_templates"]


def _load_jupyter_server_extension(server_app: ServerApp) -> None:
    from nbops.server.features_routes import feature_routes
    from nbops.server.handlers import setup_handlers
    from nbops.server.models_routes import model_routes

    setup_handlers(server_app.web_app)
    server_app.web_app.add_handlers(".*$", model_routes(server_app.web_app.settings["base_url"]))
    server_app.web_app.add_handlers(".*$", feature_routes(server_app.web_app.settings["base_url"]))
    # Parts that live beside the routes: each module has ``setup(server_app)``. A part
    # missing from a slim install is skipped; an import error inside one is raised.
    for name in SERVER_PARTS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.setup(server_app)
    server_app.log.info("nbops: routes registered under %snbops/", server_app.web_app.settings["base_url"])
