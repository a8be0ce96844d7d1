"""Where a run store is: the one rule every surface follows (see ``config.py``)."""

from __future__ import annotations

import os
from pathlib import Path

from nbops.store.config import StoreSettings, resolve_settings
from nbops.store.run_store import RunStore

__all__ = ["store_root", "open_store", "store_settings", "store_exists"]


def store_settings(store: str | os.PathLike | None, near: str | os.PathLike | None, objects: str | None = None) -> StoreSettings:
    """``store``, else $NBOPS_STORE, else nbops.toml / pyproject's [tool.nbops], else ``.nbops/`` beside ``near``
    (a notebook or pipeline path; None: a notebook in the working folder)."""
    return resolve_settings(store, near if near is not None else Path.cwd() / "x.ipynb", objects)


def store_root(store: str | os.PathLike | None, near: str | os.PathLike | None) -> Path:
    """The local folder of the store for ``near``: the store itself (embedded) or its workspace (database); nothing is created."""
    return store_settings(store, near).workspace


def store_exists(store: str | os.PathLike | None, near: str | os.PathLike | None) -> bool:
    """Whether reading could find runs: a database store always may; an embedded one when its runs.db is there."""
    settings = store_settings(store, near)
    return settings.is_database or (Path(settings.store) / "runs.db").is_file()


def open_store(store: str | os.PathLike | None, near: str | os.PathLike | None, *, create: bool = True, objects: str | None = None) -> RunStore:
    """The run store for ``near``; reads pass ``create=False``: nothing is made, and a
    missing embedded store is a NotFoundError saying "no runs yet"."""
    return RunStore(store_settings(store, near, objects), create=create)
