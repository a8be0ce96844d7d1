"""Executors and the scheduling loop."""

from __future__ import annotations

from typing import Any

from nbops.errors import UsageError
from nbops.execute.base import Executor, StageErrorInfo, StageOutcome, StageTask
from nbops.execute.scheduler import RunRequest, execute_run

__all__ = ["Executor", "RunRequest", "StageErrorInfo", "StageOutcome", "StageTask", "execute_run", "get_executor", "executor_names"]

_BUILTIN = {"local": "nbops.execute.local:LocalExecutor", "ray": "nbops.execute.ray:RayExecutor"}


def executor_names() -> list[str]:
    from importlib.metadata import entry_points

    return sorted(set(_BUILTIN) | {ep.name for ep in entry_points(group="nbops.executors")})


def get_executor(name: str, **options: Any) -> Executor:
    """An executor by name: built-ins, then the ``nbops.executors`` entry points."""
    import importlib
    from importlib.metadata import entry_points

    target = _BUILTIN.get(name)
    if target is None:
        for ep in entry_points(group="nbops.executors"):
            if ep.name == name:
                return ep.load()(**options)
        raise UsageError(f"unknown executor {name!r}", f"use one of: {', '.join(executor_names())}")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)(**options)
