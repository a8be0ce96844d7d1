"""The problems found while building a graph, collected instead of raised.

``build_graph`` never raises for a problem in the notebook (the panel shows a
partial graph next to its errors); every step reports into one ``Issues``.
"""

from __future__ import annotations

from nbops.errors import CellIssue
from nbops.notebook import Cell

__all__ = ["Issues"]


class Issues:
    def __init__(self) -> None:
        self.errors: list[CellIssue] = []
        self.warnings: list[CellIssue] = []

    def add(self, cell: Cell | None, message: str, fix: str, code: str, kind: str = "error") -> None:
        """One issue, pinned to ``cell`` (index and first line) when there is one."""
        item = CellIssue(message, fix, cell.index if cell else None, cell.first_line if cell else None, kind, code)
        (self.errors if kind == "error" else self.warnings).append(item)

    def has_error(self, code: str) -> bool:
        return any(e.code == code for e in self.errors)
