"""Def/use resolution: where each stage's reads come from.

A name a stage reads before defining it comes from the last earlier cell
outside the stage that defines it: a setup cell (prepended), the parameters
cell (a parameter of the stage), or another stage (an input, i.e. a data
edge; a module is re-imported instead of shipped). Free names of functions
are read when called, so they count only if the stage never defines them.
"""

from __future__ import annotations

from nbops.graph.analysis import BUILTIN_NAMES, CellAnalysis
from nbops.graph.assign import Assignment
from nbops.graph.definitions import Definitions
from nbops.graph.model import Stage
from nbops.graph.setup_cells import SetupClosure

__all__ = ["resolve_inputs"]


def resolve_inputs(assigned: Assignment, analysis: dict[int, CellAnalysis], defs: Definitions, closure: SetupClosure) -> None:
    """Fill each stage's inputs, reimports, setup cells, parameters and defines."""
    for stage in assigned.stages.values():
        needs = _Needs(assigned, analysis, closure, stage)
        defined: set[str] = set()
        for index in stage.cells:
            info = analysis.get(index)
            if info is None:
                continue
            for name in info.reads:
                if name in defined or name in BUILTIN_NAMES:
                    continue
                src = defs.source_of(name, index, stage.name)
                if src is None:
                    defs.unresolved(defs.nb.cells[index], name, f"stage {stage.name!r}")
                else:
                    needs.link(name, src)
                defined.add(name)
            defined |= info.defines
            stage.defines |= info.defines
        for index in stage.cells:  # free names of functions, read when called
            info = analysis.get(index)
            for name in sorted((info.deferred if info else set()) - stage.defines - defined - BUILTIN_NAMES):
                src = defs.source_of(name, index, stage.name)
                if src is not None:
                    needs.link(name, src)
                defined.add(name)
        stage.setup_cells = sorted(needs.setup)
        stage.parameters = [p.name for p in assigned.params if p.name in needs.params]


class _Needs:
    """What one stage needs besides its own cells, as its reads resolve."""

    def __init__(self, assigned: Assignment, analysis: dict[int, CellAnalysis], closure: SetupClosure, stage: Stage):
        self.assigned, self.analysis, self.closure, self.stage = assigned, analysis, closure, stage
        self.setup_set = set(assigned.setup)
        self.setup: set[int] = set(closure.always)
        self.params: set[str] = set()

    def link(self, name: str, src: int) -> None:
        if src in self.setup_set:
            cells, params = self.closure.of(src)
            self.setup |= {src} | cells
            self.params |= params
        elif src == self.assigned.params_cell:
            self.params.add(name)
        else:
            info = self.analysis[src]
            if name in info.imports:  # a module is re-imported, never shipped
                self.stage.reimports[name] = info.imports[name]
            else:
                self.stage.inputs[name] = self.assigned.roles[src][1]
