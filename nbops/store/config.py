"""Which run store: the one rule every surface (CLI, server, panel, magics) follows.

A store is where runs are recorded (a folder holding ``runs.db``, or a
``postgresql://`` database) and where their bytes go (a folder, or any fsspec
URL: ``s3://``, ``gs://``, ``az://``, ``file:///shared``). Each setting is
taken from the first place that has it:

1. the command line (``--store``, ``--objects``) or the API argument;
2. ``NBOPS_STORE`` / ``NBOPS_OBJECTS``;
3. ``nbops.toml`` (top level) or the ``[tool.nbops]`` table of ``pyproject.toml``,
   the nearest found upward from the notebook (relative paths there are relative
   to that file);
4. ``.nbops/`` beside the notebook, objects inside it.

A database store still keeps a local *workspace* (``.nbops/`` beside the
notebook, or ``workspace =`` in the config): run folders, converted pipelines
and the file-hash memo are per machine; records and objects are shared.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from nbops.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["StoreSettings", "resolve_settings", "mask_url", "is_database_url", "find_config"]

_DB_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgres://", "sqlite:///")
# user:password@ in the authority only: "smtps://host:465?to=a@x.org" has no password.
_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^/@:?#]*:)([^/@?#]*)(@)", re.I)


@dataclass(frozen=True)
class StoreSettings:
    store: str  # a folder (embedded SQLite) or a database URL, credentials included
    objects: str | None  # fsspec URL or folder; None: ``objects/`` in the store folder / workspace
    workspace: Path  # local folder for run folders, pipelines, hash memo
    source: str  # where ``store`` came from, for messages ("--store", "NBOPS_STORE", a config file, "default")

    @property
    def is_database(self) -> bool:
        return is_database_url(self.store)

    def describe(self) -> str:
        """The store as users see it: passwords masked."""
        where = mask_url(self.store)
        return f"{where} + {mask_url(self.objects)}" if self.objects else where


def is_database_url(store: str) -> bool:
    return store.startswith(_DB_SCHEMES)


def mask_url(url: str | os.PathLike | None) -> str:
    """``postgresql://alice:s3cret@db/x`` -> ``postgresql://alice:***@db/x``; paths unchanged."""
    if url is None:
        return ""
    return _PASSWORD.sub(r"\1***\3", str(url))


def find_config(near: str | os.PathLike) -> tuple[Path, dict] | None:
    """The nearest ``nbops.toml`` or ``pyproject.toml`` with a ``[tool.nbops]`` table, upward from ``near``."""
    folder = Path(near).resolve()
    if not folder.is_dir():
        folder = folder.parent
    for d in (folder, *folder.parents):
        for name in ("nbops.toml", "pyproject.toml"):
            path = d / name
            if not path.is_file():
                continue
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise UsageError(f"{path} cannot be read as TOML ({exc})", f"fix the syntax of {path}") from None
            table = data if name == "nbops.toml" else data.get("tool", {}).get("nbops")
            if isinstance(table, dict):
                unknown = set(table) - {"store", "objects", "workspace"}
                if unknown:
                    raise UsageError(f"{path}: unknown nbops setting(s) {sorted(unknown)}", "the settings are store, objects and workspace")
                return path, table
    return None


def resolve_settings(store: str | os.PathLike | None, near: str | os.PathLike, objects: str | None = None) -> StoreSettings:
    """The store for a notebook (or folder) ``near``; nothing is created or opened."""
    base = Path(near)
    beside = (base if base.is_dir() else base.parent) / ".nbops"
    config = None
    source = "--store"
    if store is None and os.environ.get("NBOPS_STORE"):
        store, source = os.environ["NBOPS_STORE"], "NBOPS_STORE"
    if objects is None and os.environ.get("NBOPS_OBJECTS"):
        objects = os.environ["NBOPS_OBJECTS"]
    workspace = None
    if store is None or objects is None:
        config = find_config(near)
    if config is not None:
        path, table = config
        if store is None and "store" in table:
            store, source = _relative(table["store"], path), str(path)
        if objects is None and "objects" in table:
            objects = _relative(table["objects"], path)
        if "workspace" in table:
            workspace = Path(_relative(table["workspace"], path))
    if store is None:
        store, source = str(beside), "default"
    store = str(store)
    if store.startswith("sqlite:///"):
        store = store.removeprefix("sqlite:///")  # a folder is how the embedded store is named
        if store.endswith("runs.db"):
            store = str(Path(store).parent)
    if workspace is None:
        workspace = beside if is_database_url(store) else Path(store)
    return StoreSettings(store=store, objects=objects, workspace=workspace, source=source)


def _relative(value: object, config_file: Path) -> str:
    text = str(value)
    if "://" in text or os.path.isabs(text):
        return text
    return str((config_file.parent / text).resolve())
