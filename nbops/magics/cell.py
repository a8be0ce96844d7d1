"""``%%stage``, ``%%setup``, ``%%skip``: in a kernel they only run their cell.

The pipeline meaning of these lines is read by the converter from the saved
notebook (``nbops.notebook.tags``); here the ``%%stage`` line is checked with
the same parser, so a line the converter would reject fails at once, and the
body runs as if the magic line were not there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class

from nbops.notebook.magic_line import pipeline_magic
from nbops.notebook.tags import STAGE_USAGE, TagError, parse_stage_magic

__all__ = ["StageMagics", "CellLog", "run_body", "normalized_source"]


def normalized_source(source: str) -> str:
    """A cell's text compared without the whitespace an editor adds or drops."""
    lines = [line.rstrip() for line in source.strip("\n").split("\n")]
    if lines and lines[0].lstrip().startswith("%%"):
        lines[0] = " ".join(lines[0].split())
    return "\n".join(lines).strip()


def _stage_of(source: str) -> str | None:
    """The stage a saved cell's ``%%stage`` line names; None when it has none the converter would accept."""
    magic = pipeline_magic(source)
    if magic is None or magic.name != "stage":
        return None
    try:
        return parse_stage_magic(magic.line).stage
    except TagError:
        return None


@dataclass
class CellLog:
    """The ``%%stage`` cells run in this kernel, so ``%nbops run`` can tell when the
    saved notebook (what a run reads) lags behind what the user ran."""

    stages: dict[str, tuple[float, str]] = field(default_factory=dict)  # name -> (time run, normalized source)

    def record(self, stage: str, source: str) -> None:
        self.stages[stage] = (time.time(), normalized_source(source))

    def not_saved(self, saved_sources: list[str], saved_at: float) -> list[str]:
        """Stages whose cell was run after ``saved_at`` with a text that the saved
        file's cell of the same stage does not have. Stages the file does not
        declare are left out: the kernel may have run another notebook's cells."""
        saved: dict[str, set[str]] = {}
        for source in saved_sources:
            text = normalized_source(source)
            name = _stage_of(text)
            if name:
                saved.setdefault(name, set()).add(text)
        return [name for name, (ran_at, text) in self.stages.items()
                if ran_at > saved_at and name in saved and text not in saved[name]]  # fmt: skip


def run_body(shell: Any, body: str) -> Any:
    """Run ``body`` in the user's namespace as the cell itself would run.

    ``shell.run_cell`` gives the body everything a cell gets (IPython syntax,
    the displayed last expression, the usual traceback); an error in it is
    then copied onto the outer cell's result, so the kernel reports the cell
    as failed and "Run All" stops, without a second traceback of the magic.
    """
    outer = getattr(shell.displayhook, "exec_result", None)
    try:
        result = shell.run_cell(body, store_history=False)
    finally:
        shell.displayhook.exec_result = outer  # the inner run clears it
    if result is not None and not result.success and outer is not None:
        outer.error_in_exec = result.error_in_exec if result.error_in_exec is not None else result.error_before_exec
    return result


@magics_class
class StageMagics(Magics):
    """The pipeline cell magics."""

    def __init__(self, shell: Any, log: CellLog | None = None):
        super().__init__(shell)
        self.log = log if log is not None else CellLog()

    @cell_magic
    def stage(self, line: str, cell: str) -> None:
        """%%stage NAME [--after A [B ...]] [--gpus N] [--cpus N] [--memory SIZE] [--timeout SECONDS] [--retries N] [--no-cache]

        Marks the cell as the start of pipeline stage NAME (read by `nbops convert`
        and `%nbops run` from the saved notebook); here it just runs the cell.
        """
        try:
            tags = parse_stage_magic(line)
        except TagError as exc:
            usage = "" if exc.fix == STAGE_USAGE else f"\nusage: {STAGE_USAGE}"
            raise UsageError(f"{exc}\n  fix: {exc.fix}{usage}") from None
        self.log.record(tags.stage, f"%%stage {line}\n{cell}")
        run_body(self.shell, cell)

    @cell_magic
    def setup(self, line: str, cell: str) -> None:
        """%%setup: imports and helpers, prepended by the converter to the stages that use them; here it runs the cell."""
        self._no_arguments("setup", line)
        run_body(self.shell, cell)

    @cell_magic
    def skip(self, line: str, cell: str) -> None:
        """%%skip: exploration only, never part of the pipeline; here it runs the cell."""
        self._no_arguments("skip", line)
        run_body(self.shell, cell)

    @staticmethod
    def _no_arguments(name: str, line: str) -> None:
        if line.strip():
            raise UsageError(f"%%{name} takes no arguments (got {line.strip()!r})\nusage: %%{name} on the first line of the cell, alone")
