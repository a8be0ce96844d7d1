"""The Jupyter server extension: nbops routes under ``/nbops/`` for the lab.

Enabled by ``jupyter-config/server-config/nbops.json`` (installed with the
wheel) or ``--ServerApp.jpserver_extensions='{"nbops": true}'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

__all__ = ["_load_jupyter_server_extension"]


def _load_jupyter_server_extension(server_app: ServerApp) -> None:
    from nbops.server.features_routes import feature_routes
    from nbops.server.handlers import setup_handlers
    from nbops.server.models_routes import model_routes

    setup_handlers(server_app.web_app)
    server_app.web_app.add_handlers(".*$", model_routes(server_app.web_app.settings["base_url"]))
    server_app.web_app.add_handlers(".*$", feature_routes(server_app.web_app.settings["base_url"]))
    server_app.log.info("nbops: routes registered under %snbops/", server_app.web_app.settings["base_url"])
