"""What each cell defines, and which earlier cell a read name comes from.

Real notebooks redefine names, so a read resolves to the *last* pipeline
cell before it that defines the name (not to "the" definer). Skip cells never
run in the pipeline: they define nothing, but are remembered so an error can
say "only a skip cell defines it".
"""

from __future__ import annotations

import bisect

from nbops.graph.analysis import CellAnalysis, CellSyntaxError, analyze_source
from nbops.graph.assign import Assignment
from nbops.graph.issues import Issues
from nbops.notebook import Cell, Notebook

__all__ = ["analyze_cells", "Definitions"]


def analyze_cells(nb: Notebook, roles: dict[int, tuple[str, str | None]], issues: Issues) -> dict[int, CellAnalysis]:
    """The reads and definitions of every code cell but the parameters cell."""
    analysis: dict[int, CellAnalysis] = {}
    for cell in nb.cells:
        role = roles.get(cell.index, ("", None))[0]
        if cell.cell_type != "code" or role in ("parameters", "markdown", "raw"):
            continue
        try:
            analysis[cell.index] = analyze_source(cell.source)
        except CellSyntaxError as exc:
            issues.add(
                cell,
                f"the cell does not parse: {exc.msg} (line {exc.lineno})",
                "fix the syntax, or tag the cell 'skip' if it is not part of the pipeline",
                "syntax",
                "warning" if role == "skip" else "error",
            )
    return analysis


class Definitions:
    """Name -> the pipeline cells defining it, in notebook order."""

    def __init__(self, nb: Notebook, assigned: Assignment, analysis: dict[int, CellAnalysis], issues: Issues):
        self.nb = nb
        self.roles = assigned.roles
        self.issues = issues
        self.definers: dict[str, list[int]] = {}  # sorted cell indices, for bisect
        self.skip_definers: dict[str, int] = {}
        self.star_before: list[int] = []
        for index, info in sorted(analysis.items()):
            if self.roles[index][0] == "skip":
                for name in info.defines:
                    self.skip_definers.setdefault(name, index)
                continue
            for name in info.defines:
                self.definers.setdefault(name, []).append(index)
            if info.star_import:
                self.star_before.append(index)
        if assigned.params_cell is not None:
            for p in assigned.params:
                bisect.insort(self.definers.setdefault(p.name, []), assigned.params_cell)
        self.cell_stage = {i: s for i, (r, s) in self.roles.items() if r in ("stage", "metrics")}

    def source_of(self, name: str, at: int, own: str | None) -> int | None:
        """The last cell before ``at`` defining ``name``, outside stage ``own``."""
        cells = self.definers.get(name, [])
        pos = bisect.bisect_left(cells, at)
        for candidate in reversed(cells[:pos]):
            if own is None or self.cell_stage.get(candidate) != own:
                return candidate
        return None

    def unresolved(self, cell: Cell, name: str, who: str) -> None:
        """Report a read of ``name`` that no earlier pipeline cell defines, saying why."""
        later = [i for i in self.definers.get(name, []) if i > cell.index]
        if later:
            where = self.roles[later[0]][1] or self.roles[later[0]][0]
            self.issues.add(
                cell,
                f"{who} reads {name!r} before any stage defines it (it is first defined later, in cell {later[0]}, {where!r})",
                f"move the code defining {name!r} above this cell, or into an earlier stage",
                "undefined-name",
            )
        elif name in self.skip_definers:
            self.issues.add(
                cell,
                f"{who} reads {name!r}, which only a 'skip' cell (cell {self.skip_definers[name]}) defines",
                f"define {name!r} in a stage, setup or parameters cell; skip cells never run in the pipeline",
                "undefined-name",
            )
        elif any(i < cell.index for i in self.star_before):
            self.issues.add(
                cell,
                f"{who} reads {name!r}, assumed to come from a 'from ... import *'",
                "import the names you use explicitly so nbops can see them",
                "star-import",
                kind="warning",
            )
        else:
            self.issues.add(
                cell,
                f"{who} reads {name!r}, which no cell of the notebook defines",
                f"define {name!r} in an earlier stage, a setup cell or the parameters cell (or fix the typo)",
                "undefined-name",
            )
