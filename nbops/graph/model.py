"""What a stage graph is made of: parameters, stages, edges, the graph itself.

Plain data; ``nbops.graph.stage_graph.build_graph`` fills it in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nbops.errors import CellIssue, GraphError
from nbops.notebook import Notebook

__all__ = ["Parameter", "Stage", "Edge", "StageGraph", "IMPLICIT_STAGE"]

IMPLICIT_STAGE = "start"


@dataclass
class Parameter:
    name: str
    default: Any
    type: str  # bool | int | float | str | list | dict | none

    def to_json(self) -> dict:
        return {"name": self.name, "default": self.default, "type": self.type}


@dataclass
class Stage:
    name: str
    cells: list[int] = field(default_factory=list)  # code and markdown cells, in order
    implicit: bool = False
    after: list[str] = field(default_factory=list)
    resources: dict[str, Any] = field(default_factory=dict)
    cache: bool = True
    inputs: dict[str, str] = field(default_factory=dict)  # variable -> producing stage
    outputs: list[str] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)
    setup_cells: list[int] = field(default_factory=list)
    reimports: dict[str, str] = field(default_factory=dict)  # name -> import statement
    metrics: list[str] = field(default_factory=list)  # expressions of its metrics cells
    annotations: dict[str, str] = field(default_factory=dict)  # Kale's pod annotations
    labels: dict[str, str] = field(default_factory=dict)  # Kale's pod labels
    defines: set[str] = field(default_factory=set)
    upstream: list[str] = field(default_factory=list)

    def resource_json(self) -> dict:
        r = {"gpus": 0, "cpus": None, "memory": None, "timeout": None, "retries": 0}
        r.update(self.resources)
        return r

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "cells": self.cells,
            "implicit": self.implicit,
            "upstream": self.upstream,
            "inputs": dict(sorted(self.inputs.items())),
            "outputs": self.outputs,
            "parameters": self.parameters,
            "setup_cells": self.setup_cells,
            "metrics": self.metrics,
            "resources": self.resource_json(),
            "cache": self.cache,
        }


@dataclass
class Edge:
    source: str
    target: str
    variables: list[str]
    explicit: bool

    def to_json(self) -> dict:
        return {"source": self.source, "target": self.target, "variables": self.variables, "explicit": self.explicit}


@dataclass
class StageGraph:
    notebook: Notebook
    stages: list[Stage]  # topological order, ties by position in the notebook
    edges: list[Edge]
    parameters: list[Parameter]
    parameters_cell: int | None
    setup_cells: list[int]
    roles: dict[int, tuple[str, str | None]]  # cell index -> (role, stage)
    errors: list[CellIssue]
    warnings: list[CellIssue]

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def raise_for_errors(self) -> StageGraph:
        if self.errors:
            raise GraphError(self.notebook.path, self.errors)
        return self

    def to_json(self) -> dict:
        cells = []
        for cell in self.notebook.cells:
            role, stage = self.roles.get(cell.index, (cell.cell_type, None))
            cells.append({"index": cell.index, "cell_type": cell.cell_type, "role": role, "stage": stage, "first_line": cell.first_line})
        return {
            "schema": "nbops.graph/1",
            "notebook": self.notebook.path,
            "stages": [s.to_json() for s in self.stages],
            "edges": [e.to_json() for e in self.edges],
            "parameters": [p.to_json() for p in self.parameters],
            "cells": cells,
            "warnings": [w.to_json() for w in self.warnings],
            "errors": [e.to_json() for e in self.errors],
        }
