"""The model registry: ``nbops.models.load("churn@production")`` and friends.

A registered version points at a run's stage output by content hash, with its
flavor, input signature, metrics and lineage; aliases move behind gates with a
recorded history. Batch prediction (``batch``), the online service (``serve``)
and edge exports (``export``) work from the same registry.
"""

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

__all__ = ["DriftReport", "GateError", "drift", "ModelRef", "history", "list_models", "load", "parse_ref", "promote", "register", "resolve", "rollback", "show"]
