"""The model registry: ``nbops.models.load("churn@production")`` and friends.

A registered version points at a run's stage output by content hash, with its
flavor, input signature, metrics and lineage; aliases move behind gates with a
recorded history. Batch prediction (``batch``), the online service (``serve``),
edge exports (``export``) and drift reports (``drift``) work from the same
registry; batch and export are imported on first use.
"""

from typing import Any

from nbops.models.drift import DriftReport, drift
from nbops.models.registry import (
    GateError,
    ModelRef,
    history,
    list_models,
    load,
    parse_ref,
    promote,
    register,
    resolve,
    rollback,
    show,
)

__all__ = [
    "DriftReport", "GateError", "ModelRef", "drift", "export_model", "history", "list_models", "load", "parse_ref",
    "predict_file", "promote", "register", "resolve", "rollback", "show",
]  # fmt: skip

_LAZY = {
    "predict_file": ("nbops.models.batch", "predict_file"),
    "export_model": ("nbops.models.export", "export_model"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'nbops.models' has no attribute {name!r}")
