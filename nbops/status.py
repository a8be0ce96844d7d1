"""Statuses of runs and stages, and how every surface shows them.

One table: the CLI, the report, the widgets and the server all take the
words, icons and colours from here (the JupyterLab panel mirrors it in
``labextension/src/status.ts``).
"""

from __future__ import annotations

__all__ = [
    "PENDING",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CACHED",
    "SKIPPED",
    "INTERRUPTED",
    "STAGE_STATUSES",
    "RUN_STATUSES",
    "DONE_OK",
    "ICON",
    "COLOUR",
]

PENDING = "pending"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CACHED = "cached"
SKIPPED = "skipped"
INTERRUPTED = "interrupted"

STAGE_STATUSES = (PENDING, RUNNING, SUCCEEDED, FAILED, CACHED, SKIPPED)
RUN_STATUSES = (RUNNING, SUCCEEDED, FAILED, INTERRUPTED)
DONE_OK = (SUCCEEDED, CACHED)  # a stage whose outputs downstream stages may use

ICON = {
    PENDING: "·",
    RUNNING: "▶",
    SUCCEEDED: "✓",
    FAILED: "✗",
    CACHED: "↺",
    SKIPPED: "–",
    INTERRUPTED: "!",
}

COLOUR = {  # CSS colours, also used by plotly figures
    PENDING: "#9e9e9e",
    RUNNING: "#1976d2",
    SUCCEEDED: "#2e7d32",
    FAILED: "#c62828",
    CACHED: "#6a1b9a",
    SKIPPED: "#757575",
    INTERRUPTED: "#ef6c00",
}
