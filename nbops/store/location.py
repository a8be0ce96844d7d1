"""Where a run store is: the one rule every surface follows."""

from __future__ import annotations

import os
from pathlib import Path

from nbops.store.run_store import RunStore

__all__ = ["store_root", "open_store"]


def store_root(store: str | os.PathLike | None, near: str | os.PathLike) -> Path:
    """``store``, else $NBOPS_STORE, else ``.nbops/`` beside ``near`` (a notebook or folder); nothing is created."""
    if store is None:
        store = os.environ.get("NBOPS_STORE")
    if store is None:
        base = Path(near)
        store = (base if base.is_dir() else base.parent) / ".nbops"
    return Path(store)


def open_store(store: str | os.PathLike | None, near: str | os.PathLike, *, create: bool = True) -> RunStore:
    """The run store for ``near``; reads pass ``create=False``: nothing is made, and a
    missing store is a NotFoundError saying "no runs yet"."""
    return RunStore(store_root(store, near), create=create)
