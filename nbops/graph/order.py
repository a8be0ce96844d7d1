"""Edges, topological order and cycles.

Edges are the data edges (variables a stage reads from another) plus the
explicit ``after:`` edges. Stages come out in topological order, ties broken
by their position in the notebook, so the order reads like the notebook.
"""

from __future__ import annotations

from nbops.graph.assign import Assignment
from nbops.graph.issues import Issues
from nbops.graph.model import Edge, Stage
from nbops.notebook import Notebook

__all__ = ["order_stages"]


def order_stages(nb: Notebook, assigned: Assignment, issues: Issues) -> tuple[list[Stage], list[Edge]]:
    """The stages in run order (upstream and outputs filled in) and the edges between them."""
    by_name = assigned.stages
    variables: dict[tuple[str, str], list[str]] = {}
    for stage in by_name.values():
        for var, producer in sorted(stage.inputs.items()):
            variables.setdefault((producer, stage.name), []).append(var)
    explicit = _explicit_edges(nb, assigned, issues)
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
            _report_cycle(nb, by_name, todo, deps, issues)
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


def _explicit_edges(nb: Notebook, assigned: Assignment, issues: Issues) -> set[tuple[str, str]]:
    by_name = assigned.stages
    explicit: set[tuple[str, str]] = set()
    for stage in by_name.values():
        for target in stage.after:
            cell = nb.cells[assigned.after_cells[(stage.name, target)]]
            if target not in by_name:
                known = ", ".join(sorted(by_name)) or "none"
                issues.add(cell, f"after:{target} names no stage (stages: {known})", "fix the stage name in the after: tag", "unknown-after")
            elif target == stage.name:
                issues.add(cell, f"stage {stage.name!r} is tagged to run after itself", "remove the after: tag", "cycle")
            else:
                explicit.add((target, stage.name))
    return explicit


def _report_cycle(nb: Notebook, by_name: dict[str, Stage], todo: set[str], deps: dict[str, set[str]], issues: Issues) -> None:
    # Walk back along unresolved dependencies until a stage repeats.
    start = min(todo)
    path = [start]
    while True:
        nxt = min(d for d in deps[path[-1]] if d in todo)
        if nxt in path:
            loop = path[path.index(nxt) :] + [nxt]
            break
        path.append(nxt)
    loop.reverse()
    first = by_name[loop[0]]
    cell = nb.cells[first.cells[0]] if first.cells else None
    issues.add(
        cell,
        "the stages form a cycle: " + " -> ".join(loop),
        "a stage can only use what earlier stages produce; split the stage that appears twice, or remove an after: tag",
        "cycle",
    )
