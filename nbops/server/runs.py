"""What the run routes answer: runs with the store they live in and who ran them.

The store is the one the CLI would use for the notebook (``--store`` aside:
NBOPS_STORE, nbops.toml / pyproject, else ``.nbops/`` beside it), shown as
``{location, kind, objects, shared_objects, source}`` with passwords masked.
Asking never creates a store: with none yet, its settings are described.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbops.errors import NotFoundError
from nbops.history import list_runs, run_to_json
from nbops.store import RunStore, mask_url, store_settings, validate_run_id

__all__ = ["describe_store", "runs_answer", "run_answer"]


def _open(notebook: Path) -> tuple[RunStore | None, dict[str, Any]]:
    """The notebook's store (None when there is none yet) and its description."""
    settings = store_settings(None, notebook)
    try:
        rs = RunStore(settings, create=False)
    except NotFoundError:  # no embedded store yet: say where it will be
        location = str(Path(settings.store).resolve())
        objects = mask_url(settings.objects) if settings.objects else str(Path(location) / "objects")
        shown = location if settings.objects is None else f"{location} + {objects}"
        return None, {"location": shown, "kind": "sqlite", "objects": objects, "shared_objects": False, "source": settings.source}
    return rs, {**rs.describe(), "source": settings.source}


def describe_store(notebook: Path) -> dict[str, Any]:
    """The store for ``notebook``, as the panel shows it (no credentials)."""
    return _open(notebook)[1]


def _author(run: dict[str, Any], raw: dict[str, Any] | None) -> dict[str, Any]:
    """``user`` and ``host`` of a run JSON, taken from its record when the JSON lacks them."""
    raw = raw or {}
    return {**run, "user": run.get("user", raw.get("user")), "host": run.get("host", raw.get("host"))}


def runs_answer(notebook: Path, limit: int) -> dict[str, Any]:
    """``GET /nbops/runs``: ``{store, runs}``, each run with its ``user`` and ``host``."""
    rs, store = _open(notebook)
    if rs is None:
        return {"store": store, "runs": []}
    runs = list_runs(notebook, limit=limit)  # resolves the same settings: the same store
    if any("user" not in r or "host" not in r for r in runs):
        records = {r["id"]: r for r in rs.list_runs(notebook=str(notebook.resolve()), limit=limit, brief=True)}
        runs = [_author(r, records.get(r["id"])) for r in runs]
    return {"store": store, "runs": runs}


def run_answer(run_id: str, notebook: Path) -> dict[str, Any]:
    """``GET /nbops/runs/<id>``: the run JSON with ``user``, ``host`` and ``store``."""
    validate_run_id(run_id)
    rs, store = _open(notebook)
    if rs is None:
        raise NotFoundError(f"no run {run_id}: no runs yet: there is no run store at {store['location']}", "run the notebook first")
    raw = rs.get_run(run_id)
    return {**_author(run_to_json(raw), raw), "store": store}
