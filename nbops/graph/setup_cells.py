"""Setup closure: which setup cells and parameters each setup cell needs.

A setup cell is prepended to the stages that use it, so it may read only
other setup cells and parameters; a stage that needs it needs what it needs.
Setup cells that define nothing (``%matplotlib inline``, ``warnings.filterwarnings``)
go to every stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nbops.graph.analysis import BUILTIN_NAMES, CellAnalysis
from nbops.graph.assign import Assignment
from nbops.graph.definitions import Definitions
from nbops.graph.issues import Issues
from nbops.notebook import Notebook

__all__ = ["SetupClosure", "close_setup"]


@dataclass
class SetupClosure:
    needs: dict[int, tuple[set[int], set[str]]] = field(default_factory=dict)  # setup cell -> (setup cells, parameters)
    always: set[int] = field(default_factory=set)  # setup cells every stage gets

    def of(self, index: int) -> tuple[set[int], set[str]]:
        return self.needs.get(index, (set(), set()))


def close_setup(nb: Notebook, assigned: Assignment, analysis: dict[int, CellAnalysis], defs: Definitions, issues: Issues) -> SetupClosure:
    closure = SetupClosure()
    setup_set = set(assigned.setup)
    for index in assigned.setup:
        info = analysis.get(index)
        if info is None:
            continue
        cells, params = set(), set()
        for name in [*info.reads, *sorted(info.deferred - info.defines)]:
            if name in BUILTIN_NAMES:
                continue
            src = defs.source_of(name, index, None)
            if src is None:
                if name in info.reads:
                    defs.unresolved(nb.cells[index], name, "the setup cell")
                continue
            if src in setup_set:
                cells |= {src} | closure.of(src)[0]
                params |= closure.of(src)[1]
            elif src == assigned.params_cell:
                params.add(name)
            else:
                issues.add(
                    nb.cells[index],
                    f"the setup cell reads {name!r}, which stage {defs.cell_stage[src]!r} defines",
                    "a setup cell is prepended to stages, so it may use only other setup cells and parameters; move it into a stage",
                    "setup-reads-stage",
                )
        closure.needs[index] = (cells, params)
    closure.always = {i for i in assigned.setup if i in analysis and not analysis[i].defines}
    return closure
