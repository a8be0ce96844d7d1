"""From a tagged notebook to a stage graph: stages, data edges, errors.

``build_graph`` never raises for a problem in the notebook: problems are
``CellIssue``s in ``graph.errors`` / ``graph.warnings`` (the JupyterLab panel
shows a partial graph next to its errors). ``graph.raise_for_errors()`` turns
them into one ``GraphError`` for the CLI and the converter.
"""

from __future__ import annotations

import ast
import bisect
from dataclasses import dataclass, field
from typing import Any

from nbops.errors import CellIssue, GraphError
from nbops.graph.analysis import BUILTIN_NAMES, CellAnalysis, CellSyntaxError, analyze_source
from nbops.notebook import Cell, Notebook, TagError, read_cell_tags
from nbops.notebook.tags import RESOURCE_KEYS

__all__ = ["Stage", "Edge", "Parameter", "StageGraph", "build_graph", "IMPLICIT_STAGE"]

IMPLICIT_STAGE = "start"
PARAM_TYPES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict", type(None): "none"}


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

    def raise_for_errors(self) -> "StageGraph":
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


def build_graph(nb: Notebook) -> StageGraph:
    return _Builder(nb).build()


class _Builder:
    def __init__(self, nb: Notebook):
        self.nb = nb
        self.errors: list[CellIssue] = []
        self.warnings: list[CellIssue] = []
        self.stages: dict[str, Stage] = {}
        self.roles: dict[int, tuple[str, str | None]] = {}
        self.analysis: dict[int, CellAnalysis] = {}
        self.params: list[Parameter] = []
        self.params_cell: int | None = None
        self.setup: list[int] = []
        self.skip: list[int] = []
        self.after_cells: dict[str, int] = {}  # "stage->target" -> cell that asked

    def issue(self, cell: Cell | None, message: str, fix: str, code: str, kind: str = "error") -> None:
        item = CellIssue(message, fix, cell.index if cell else None, cell.first_line if cell else None, kind, code)
        (self.errors if kind == "error" else self.warnings).append(item)

    # -- 1. which cell belongs where ---------------------------------------
    def assign_cells(self) -> None:
        current: str | None = None
        pending_implicit: list[Cell] = []
        saw_stage_tag = False
        for cell in self.nb.cells:
            if cell.cell_type != "code":
                if current:
                    self.stages[current].cells.append(cell.index)
                self.roles[cell.index] = (cell.cell_type, current)
                continue
            try:
                tags = read_cell_tags(list(cell.tags), cell.source)
            except TagError as exc:
                self.issue(cell, str(exc), exc.fix, "bad-tag")
                self.roles[cell.index] = ("skip", None)
                continue
            if tags.role in ("parameters", "setup", "skip"):
                if tags.stage or tags.after or tags.resources:
                    self.issue(
                        cell,
                        f"a {tags.role} cell cannot also carry stage, after or resource tags",
                        f"move those tags to a cell of the stage, or remove the {tags.role} tag",
                        "conflicting-tags",
                    )
                self.roles[cell.index] = (tags.role, None)
                if tags.role == "parameters":
                    self.read_parameters(cell)
                elif tags.role == "setup":
                    self.setup.append(cell.index)
                else:
                    self.skip.append(cell.index)
                continue
            if tags.stage:
                saw_stage_tag = True
                current = tags.stage
                self.stages.setdefault(current, Stage(current))
            elif current is None:
                current = IMPLICIT_STAGE
                self.stages[current] = Stage(current, implicit=True)
                pending_implicit.append(cell)
            stage = self.stages[current]
            stage.cells.append(cell.index)
            self.roles[cell.index] = ("metrics" if tags.role == "metrics" else "stage", current)
            if tags.role == "metrics":
                self.read_metrics(cell, stage)
            self.merge_stage_tags(cell, stage, tags)
        if not saw_stage_tag:
            # No stage at all: no implicit stage either (the panel colours cells by this).
            self.roles = {i: (role, None) for i, (role, _) in self.roles.items()}
        if not saw_stage_tag and not any(e.code == "bad-tag" for e in self.errors):
            self.stages.clear()
            self.issue(
                None,
                "the notebook has no stages",
                "tag the first cell of each stage 'stage:NAME' (or start it with %%stage NAME); see the tag table in the README",
                "no-stages",
            )
        elif not saw_stage_tag:
            self.stages.clear()
        elif pending_implicit:
            first = pending_implicit[0]
            self.issue(
                first,
                f"cells before the first stage tag form an implicit first stage {IMPLICIT_STAGE!r}",
                "tag the first of them 'stage:NAME' to name it, or 'setup'/'skip' if they are not pipeline work",
                "implicit-stage",
                kind="warning",
            )

    def merge_stage_tags(self, cell: Cell, stage: Stage, tags: Any) -> None:
        for target in tags.after:
            if target not in stage.after:
                stage.after.append(target)
                self.after_cells[f"{stage.name}->{target}"] = cell.index
        for key, value in tags.resources.items():
            old = stage.resources.get(key)
            if old is not None and old != value:
                self.issue(
                    cell,
                    f"stage {stage.name!r} has conflicting {key} tags ({key}:{old} and {key}:{value})",
                    f"keep one {key}: tag for the stage",
                    "conflicting-resources",
                )
            else:
                stage.resources[key] = value
        if tags.cache is False:
            stage.cache = False

    def read_parameters(self, cell: Cell) -> None:
        if self.params_cell is not None:
            first = self.nb.cells[self.params_cell]
            self.issue(
                cell,
                f"a second parameters cell (the first is cell {first.index}: \"{first.first_line}\")",
                "merge the parameters into one cell tagged 'parameters'",
                "two-parameters-cells",
            )
            return
        self.params_cell = cell.index
        try:
            tree = ast.parse(cell.source)
        except SyntaxError as exc:
            self.issue(cell, f"the parameters cell does not parse: {exc.msg} (line {exc.lineno})", "fix the syntax", "syntax")
            return
        for node in tree.body:
            target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else getattr(node, "target", None)
            value = getattr(node, "value", None)
            if not isinstance(node, (ast.Assign, ast.AnnAssign)) or not isinstance(target, ast.Name) or value is None:
                self.issue(
                    cell,
                    f"the parameters cell may only assign values to names (line {node.lineno}: {ast.unparse(node)[:40]})",
                    "keep 'name = value' lines in the parameters cell and move other code to a setup cell or a stage",
                    "bad-parameters",
                )
                continue
            try:
                default = ast.literal_eval(value)
            except ValueError:
                self.issue(
                    cell,
                    f"parameter {target.id!r} has a default that is not a literal ({ast.unparse(value)[:40]})",
                    "use a plain value (number, string, bool, list, dict, None) and build objects from it in a stage",
                    "bad-parameters",
                )
                continue
            kind = PARAM_TYPES.get(type(default))
            if kind is None:  # tuples, sets, bytes, complex
                default, kind = (list(default), "list") if isinstance(default, (tuple, set)) else (default, "str")
            self.params = [p for p in self.params if p.name != target.id]
            self.params.append(Parameter(target.id, default, kind))

    def read_metrics(self, cell: Cell, stage: Stage) -> None:
        for line in cell.source.splitlines():
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                expr = ast.parse(text, mode="eval").body
            except SyntaxError:
                self.issue(cell, f"metrics line {text!r} is not an expression", "write one name or expression per line", "bad-metrics")
                continue
            if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "print" and len(expr.args) == 1:
                expr = expr.args[0]  # Kale's pipeline-metrics: print(accuracy)
            stage.metrics.append(ast.unparse(expr))

    # -- 2. what each cell reads and defines -------------------------------
    def analyze_cells(self) -> None:
        for cell in self.nb.cells:
            role = self.roles.get(cell.index, ("", None))[0]
            if cell.cell_type != "code" or role in ("parameters", "markdown", "raw"):
                continue
            try:
                self.analysis[cell.index] = analyze_source(cell.source)
            except CellSyntaxError as exc:
                kind = "warning" if role == "skip" else "error"
                self.issue(
                    cell,
                    f"the cell does not parse: {exc.msg} (line {exc.lineno})",
                    "fix the syntax, or tag the cell 'skip' if it is not part of the pipeline",
                    "syntax",
                    kind,
                )

    # -- 3. where each read comes from --------------------------------------
    def resolve(self) -> None:
        # name -> sorted cell indices defining it (pipeline cells only), for bisect
        definers: dict[str, list[int]] = {}
        skip_definers: dict[str, int] = {}
        star_before: list[int] = []
        for index, info in sorted(self.analysis.items()):
            role, _ = self.roles[index]
            if role == "skip":
                for name in info.defines:
                    skip_definers.setdefault(name, index)
                continue
            for name in info.defines:
                definers.setdefault(name, []).append(index)
            if info.star_import:
                star_before.append(index)
        if self.params_cell is not None:
            for p in self.params:
                bisect.insort(definers.setdefault(p.name, []), self.params_cell)
        cell_stage = {i: s for i, (r, s) in self.roles.items() if r in ("stage", "metrics")}
        setup_set = set(self.setup)

        def source_of(name: str, at: int, own: str | None) -> int | None:
            cells = definers.get(name, [])
            pos = bisect.bisect_left(cells, at)
            for candidate in reversed(cells[:pos]):
                if own is None or cell_stage.get(candidate) != own:
                    return candidate
            return None

        def unresolved(cell: Cell, name: str, who: str) -> None:
            later = [i for i in definers.get(name, []) if i > cell.index]
            if later:
                where = self.roles[later[0]][1] or self.roles[later[0]][0]
                self.issue(
                    cell,
                    f"{who} reads {name!r} before any stage defines it (it is first defined later, in cell {later[0]}, {where!r})",
                    f"move the code defining {name!r} above this cell, or into an earlier stage",
                    "undefined-name",
                )
            elif name in skip_definers:
                self.issue(
                    cell,
                    f"{who} reads {name!r}, which only a 'skip' cell (cell {skip_definers[name]}) defines",
                    f"define {name!r} in a stage, setup or parameters cell; skip cells never run in the pipeline",
                    "undefined-name",
                )
            elif any(i < cell.index for i in star_before):
                self.issue(
                    cell,
                    f"{who} reads {name!r}, assumed to come from a 'from ... import *'",
                    "import the names you use explicitly so nbops can see them",
                    "star-import",
                    kind="warning",
                )
            else:
                self.issue(
                    cell,
                    f"{who} reads {name!r}, which no cell of the notebook defines",
                    f"define {name!r} in an earlier stage, a setup cell or the parameters cell (or fix the typo)",
                    "undefined-name",
                )

        # Setup cells: which setup cells and parameters each setup cell needs.
        setup_needs: dict[int, tuple[set[int], set[str]]] = {}
        for index in self.setup:
            info = self.analysis.get(index)
            if info is None:
                continue
            cells, params = set(), set()
            for name in [*info.reads, *sorted(info.deferred - info.defines)]:
                if name in BUILTIN_NAMES:
                    continue
                src = source_of(name, index, None)
                if src is None:
                    if name in info.reads:
                        unresolved(self.nb.cells[index], name, "the setup cell")
                    continue
                if src in setup_set:
                    cells |= {src} | setup_needs.get(src, (set(), set()))[0]
                    params |= setup_needs.get(src, (set(), set()))[1]
                elif src == self.params_cell:
                    params.add(name)
                else:
                    self.issue(
                        self.nb.cells[index],
                        f"the setup cell reads {name!r}, which stage {cell_stage[src]!r} defines",
                        "a setup cell is prepended to stages, so it may use only other setup cells and parameters; move it into a stage",
                        "setup-reads-stage",
                    )
            setup_needs[index] = (cells, params)
        always = {i for i in self.setup if i in self.analysis and not self.analysis[i].defines}

        for stage in self.stages.values():
            defined: set[str] = set()
            needed_setup, params = set(always), set()
            for index in stage.cells:
                info = self.analysis.get(index)
                if info is None:
                    continue
                cell = self.nb.cells[index]
                reads = [(n, index) for n in info.reads]
                for name, at in reads:
                    if name in defined or name in BUILTIN_NAMES:
                        continue
                    src = source_of(name, at, stage.name)
                    if src is None:
                        unresolved(cell, name, f"stage {stage.name!r}")
                        defined.add(name)
                        continue
                    self.link(stage, name, src, setup_set, setup_needs, needed_setup, params)
                    defined.add(name)
                defined |= info.defines
                stage.defines |= info.defines
            for index in stage.cells:  # free names of functions, read when called
                info = self.analysis.get(index)
                for name in sorted((info.deferred if info else set()) - stage.defines - defined - BUILTIN_NAMES):
                    src = source_of(name, index, stage.name)
                    if src is not None:
                        self.link(stage, name, src, setup_set, setup_needs, needed_setup, params)
                    defined.add(name)
            stage.setup_cells = sorted(needed_setup)
            stage.parameters = [p.name for p in self.params if p.name in params]
        self.cell_stage = cell_stage

    def link(self, stage, name, src, setup_set, setup_needs, needed_setup, params) -> None:
        if src in setup_set:
            needed_setup.add(src)
            cells, p = setup_needs.get(src, (set(), set()))
            needed_setup |= cells
            params |= p
        elif src == self.params_cell:
            params.add(name)
        else:
            info = self.analysis[src]
            producer = self.roles[src][1]
            if name in info.imports:  # a module is re-imported, never shipped
                stage.reimports[name] = info.imports[name]
            else:
                stage.inputs[name] = producer

    # -- 4. edges, order, cycles --------------------------------------------
    def connect(self) -> tuple[list[Stage], list[Edge]]:
        by_name = self.stages
        variables: dict[tuple[str, str], list[str]] = {}
        for stage in by_name.values():
            for var, producer in sorted(stage.inputs.items()):
                variables.setdefault((producer, stage.name), []).append(var)
        explicit: set[tuple[str, str]] = set()
        for stage in by_name.values():
            for target in stage.after:
                cell = self.nb.cells[self.after_cells[f"{stage.name}->{target}"]]
                if target not in by_name:
                    known = ", ".join(sorted(by_name)) or "none"
                    self.issue(cell, f"after:{target} names no stage (stages: {known})", "fix the stage name in the after: tag", "unknown-after")
                elif target == stage.name:
                    self.issue(cell, f"stage {stage.name!r} is tagged to run after itself", "remove the after: tag", "cycle")
                else:
                    explicit.add((target, stage.name))
        pairs = set(variables) | explicit
        position = {name: s.cells[0] if s.cells else 0 for name, s in by_name.items()}
        deps: dict[str, set[str]] = {name: set() for name in by_name}
        for a, b in pairs:
            deps[b].add(a)
        order: list[str] = []
        done: set[str] = set()
        todo = set(by_name)
        while todo:
            ready = sorted((n for n in todo if deps[n] <= done), key=lambda n: position[n])
            if not ready:
                self.report_cycle(todo, deps)
                order += sorted(todo, key=lambda n: position[n])
                break
            order.append(ready[0])
            done.add(ready[0])
            todo.discard(ready[0])
        for name in order:
            by_name[name].upstream = sorted(deps[name], key=lambda n: order.index(n))
        edges = [
            Edge(a, b, variables.get((a, b), []), (a, b) in explicit and (a, b) not in variables)
            for a, b in sorted(pairs, key=lambda p: (order.index(p[1]), order.index(p[0])))
        ]
        for stage in by_name.values():
            stage.outputs = sorted({v for (a, _), vs in variables.items() if a == stage.name for v in vs})
        return [by_name[n] for n in order], edges

    def report_cycle(self, todo: set[str], deps: dict[str, set[str]]) -> None:
        # Walk back along unresolved dependencies until a stage repeats.
        start = min(todo)
        path = [start]
        while True:
            nxt = min(d for d in deps[path[-1]] if d in todo)
            if nxt in path:
                loop = path[path.index(nxt):] + [nxt]
                break
            path.append(nxt)
        loop.reverse()
        first = self.stages[loop[0]]
        cell = self.nb.cells[first.cells[0]] if first.cells else None
        self.issue(
            cell,
            "the stages form a cycle: " + " -> ".join(loop),
            "a stage can only use what earlier stages produce; split the stage that appears twice, or remove an after: tag",
            "cycle",
        )

    def build(self) -> StageGraph:
        self.assign_cells()
        self.analyze_cells()
        if self.stages:
            self.resolve()
        stages, edges = self.connect()
        for stage in stages:
            stage.resources.setdefault("retries", 0)
            if stage.resources.get("gpus") is None:
                stage.resources["gpus"] = 0
            stage.resources = {k: stage.resources.get(k) for k in RESOURCE_KEYS}
        return StageGraph(self.nb, stages, edges, self.params, self.params_cell, self.setup, self.roles, self.errors, self.warnings)
