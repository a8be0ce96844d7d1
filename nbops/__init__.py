"""nbops: tagged notebooks into versioned, testable pipelines.

``import nbops`` stays light: the stage API is imported eagerly (a stage
kernel needs it), everything heavy (widgets, plotly, server, Ray) lazily on
first use.
"""

from __future__ import annotations

from typing import Any

from nbops.runtime.api import input, log_artifact, log_metric, log_model

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "check",
    "compare",
    "explore",
    "input",
    "load_ipython_extension",
    "log_artifact",
    "log_metric",
    "log_model",
    "models",
    "features",
    "runs_view",
]

_LAZY = {
    "check": ("nbops.runtime.check", None),
    "explore": ("nbops.widgets", "explore"),
    "compare": ("nbops.widgets", "compare"),
    "runs_view": ("nbops.widgets", "runs_view"),
    "models": ("nbops.models", None),
    "features": ("nbops.features", None),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        return module if attr is None else getattr(module, attr)
    raise AttributeError(f"module 'nbops' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbops``: the %%stage / %nbops magics."""
    from nbops.magics import load_ipython_extension as load

    load(ipython)


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "nbops.server"}]


def _jupyter_labextension_paths() -> list[dict]:
    return [{"src": "labextension", "dest": "nbops"}]
