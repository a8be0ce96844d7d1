"""Where a cell's ``%%magic`` line is, and what it is: the one place that finds it.

IPython reads a cell magic from the first non-blank line of the cell (it drops
leading blank lines and dedents before looking), so the tags, the static
analysis, the converter and the kernel magics all ask here instead of each
splitting the first line its own way. What a ``%%stage`` line's arguments
mean is ``nbops.notebook.tags.parse_stage_magic``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MagicLine", "PIPELINE_MAGICS", "cell_magic", "pipeline_magic", "strip_pipeline_magic"]

# Cell magics that only describe the pipeline; stripped from generated notebooks.
PIPELINE_MAGICS = ("stage", "setup", "skip")


@dataclass(frozen=True)
class MagicLine:
    """``%%stage train --gpus 1`` at the top of a cell."""

    name: str  # "stage", "time", ... ("" for a bare "%%")
    args: str  # the rest of the line, stripped: "train --gpus 1"
    line: str  # the whole line, stripped: "%%stage train --gpus 1"
    body: str  # the cell without that line (and without the blank lines above it)


def cell_magic(source: str) -> MagicLine | None:
    """The cell magic that starts ``source``, if any."""
    lines = source.split("\n")
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("%%"):
            return None
        name, args = (line[2:].split(None, 1) + ["", ""])[:2]
        return MagicLine(name, args.strip(), line, "\n".join(lines[i + 1 :]))
    return None


def pipeline_magic(source: str) -> MagicLine | None:
    """The ``%%stage``/``%%setup``/``%%skip`` line that starts ``source``, if any."""
    magic = cell_magic(source)
    return magic if magic is not None and magic.name in PIPELINE_MAGICS else None


def strip_pipeline_magic(source: str) -> str:
    """The cell without a leading ``%%stage``/``%%setup``/``%%skip`` line."""
    magic = pipeline_magic(source)
    return source if magic is None else magic.body.lstrip("\n")
