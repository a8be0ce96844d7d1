"""``nbops.models.drift("churn@production")``: have the inputs a service was sent moved
away from the data the version was trained on?

The served side is what ``nbops serve --log-requests RATE`` sampled into the store
(``Registry.requests``: ``{"columns": {name: [values]}}`` per request). The trained
side is one output of the version's run whose schema matches the version's input
signature, chosen by a fixed rule (see :func:`training_output`). The statistics are
the ones behind ``nbops.compare`` (KS or chi-square, PSI, per column), not a copy.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from nbops.errors import NbopsError, NotFoundError, UsageError
from nbops.models.registry import load_object, object_path, open_registry, resolve, schema_signature
from nbops.status import DONE_OK
from nbops.store import RunStore

__all__ = ["DriftReport", "drift", "training_output"]


@dataclass(frozen=True)
class DriftReport:
    """Per-column drift of served inputs against a version's training data, most drifted first.

    ``columns``: dicts with column, kind, test (ks or chi2), statistic, p_value, psi, drifted."""

    model: str
    version: int
    reference: str  # "stage features, output X_train of run 20261201-..."
    reference_rows: int
    served_rows: int
    requests: int
    since: float | None  # epoch seconds, or None for every logged request
    columns: list[dict[str, Any]] = field(default_factory=list)

    @property
    def drifted(self) -> list[str]:
        return [c["column"] for c in self.columns if c["drifted"]]

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.columns, columns=["column", "kind", "test", "statistic", "p_value", "psi", "drifted", "note"])

    def to_json(self) -> dict[str, Any]:
        from nbops.store import iso
        from nbops.text import finite_json

        return finite_json(
            {
                "model": self.model,
                "version": self.version,
                "reference": self.reference,
                "reference_rows": self.reference_rows,
                "served_rows": self.served_rows,
                "requests": self.requests,
                "since": iso(self.since) if self.since is not None else None,
                "drifted": self.drifted,
                "columns": self.columns,
            }
        )

    def _repr_html_(self) -> str:  # shown as a table when a notebook cell ends with the report
        from html import escape

        head = (
            f"<p><b>{escape(self.model)} v{self.version}</b>: {self.served_rows} served rows ({self.requests} requests) "
            f"vs {self.reference_rows} training rows ({escape(self.reference)}); drifted: {escape(', '.join(self.drifted)) or 'none'}</p>"
        )
        return head + self.to_frame().to_html(index=False)


def _since_epoch(since: float | dt.timedelta | dt.datetime | None, now: float) -> float | None:
    """``since`` as epoch seconds: a number of seconds back, a timedelta, or a moment."""
    if since is None:
        return None
    if isinstance(since, dt.datetime):
        return since.timestamp()
    if isinstance(since, dt.timedelta):
        return now - since.total_seconds()
    if isinstance(since, (int, float)) and not isinstance(since, bool) and since >= 0:
        return now - float(since)
    raise UsageError(f"since must be seconds back, a timedelta or a datetime, not {since!r}", "e.g. nbops.models.drift('churn@production', since=86400)")


def training_output(rs: RunStore, version: dict) -> tuple[dict, str, str]:
    """The output of the version's run that holds its training inputs: ``(meta, stage, var)``.

    Candidates are the DataFrames and arrays of the run's succeeded or cached stages whose schema
    matches the version's signature (the same column names; for arrays the same width).
    Among them, deterministically: a name containing "train" first (X_train over X_test),
    then the earlier stage in the run, then the name in alphabetical order."""
    sig = version.get("signature") or {}
    if sig.get("kind") not in ("frame", "array"):
        raise UsageError(
            f"{version['name']} v{version['version']} has no input signature: nothing says which data it was trained on",
            "register a model with an input example (nbops.log_model(model, NAME, input_example=X)) or fitted on a DataFrame",
        )
    run = rs.get_run(version["run_id"])
    found = []
    for order, s in enumerate(run["stages"]):
        if s["status"] not in DONE_OK:
            continue
        for var, meta in (s.get("outputs") or {}).items():
            if meta.get("serializer") not in ("pandas", "numpy"):
                continue
            try:
                schema = schema_signature(object_path(rs, meta["sha256"], meta["file"], meta.get("bytes"), verify=False), meta["serializer"])
            except (OSError, ValueError, NbopsError):  # gone or unreadable: not a candidate
                continue
            if _matches(sig, schema):
                found.append(("train" not in var.lower(), order, var, s["name"], meta))
    if not found:
        raise NotFoundError(
            f"no output of run {version['run_id']} matches the signature of {version['name']} v{version['version']}",
            "drift needs the training data as a stage output (a DataFrame with the model's columns, or an array of its width)",
        )
    _, _, var, stage, meta = min(found, key=lambda f: f[:3])
    return meta, stage, var


def _matches(sig: dict, schema: dict) -> bool:
    if sig["kind"] == "frame":
        return schema.get("kind") == "frame" and {c["name"] for c in schema["columns"]} == {c["name"] for c in sig["columns"]}
    width = sig["shape"][1] if len(sig.get("shape") or []) > 1 else None
    return schema.get("kind") == "array" and len(schema.get("shape") or []) == 2 and schema["shape"][1] == width


def _as_frame(value: Any, sig: dict):
    """A table with the signature's columns (arrays: columns named 0, 1, ... by position)."""
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return value[[c["name"] for c in sig["columns"]]] if sig["kind"] == "frame" else value
    import numpy as np

    arr = np.asarray(value)
    return pd.DataFrame(arr.reshape(len(arr), -1), columns=[str(i) for i in range(arr.reshape(len(arr), -1).shape[1])])


def _served_frame(logged: list[dict], sig: dict):
    """Every logged request's columns, one row per served input row."""
    import pandas as pd

    parts = []
    for r in logged:
        cols = (r.get("payload") or {}).get("columns") or {}
        if cols:
            parts.append(pd.DataFrame(cols))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if sig["kind"] == "array":  # array models get rows of numbers: name them by position, as the reference
        frame.columns = [str(i) for i in range(frame.shape[1])]
    return frame


def drift(ref: str, since: float | dt.timedelta | dt.datetime | None = None, *, store=None, near=None, **options: Any) -> DriftReport:
    """Drift of the inputs served to ``ref`` (``MODEL@ALIAS`` or ``MODEL@VERSION``) since
    ``since`` against the data that version was trained on.

    ``options`` go to the comparison behind ``nbops.compare`` (``alpha``, ``psi_threshold``, ``bins``, ``top_k``)."""
    rs, reg = open_registry(store, near)
    version = resolve(ref, registry=reg)
    start = _since_epoch(since, time.time())
    logged = reg.requests(version["name"], version["version"], since=start)
    label = f"{version['name']} v{version['version']}"
    if not logged:
        window = "" if start is None else f" since {dt.datetime.fromtimestamp(start, dt.timezone.utc):%Y-%m-%d %H:%M} UTC"
        raise NotFoundError(
            f"no served requests of {label} were logged{window}: nothing to compare",
            f"serve it with request logging: nbops serve {ref} --log-requests 0.1" + (", or widen --since" if start is not None else ""),
        )
    sig = version["signature"]
    meta, stage, var = training_output(rs, version)
    reference = _as_frame(load_object(rs, meta["sha256"], meta["file"], meta["serializer"], meta.get("bytes")), sig)
    served = _served_frame(logged, sig)
    from nbops.datastats.drift import drift_table  # pandas and numpy: only when a report is made

    table = drift_table(reference, served, **options)
    columns = [
        {"column": c.name, "kind": c.kind, "test": c.test, "statistic": c.statistic, "p_value": c.p_value, "psi": c.psi, "drifted": c.drifted, "note": c.note}
        for c in table.columns
    ]
    return DriftReport(
        model=version["name"], version=version["version"], reference=f"stage {stage}, output {var} of run {version['run_id']}",
        reference_rows=len(reference), served_rows=len(served), requests=len(logged), since=start, columns=columns,
    )  # fmt: skip
