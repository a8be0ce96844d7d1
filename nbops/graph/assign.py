"""Which cell belongs where: each cell's role and stage, from its tags.

A ``stage:NAME`` cell starts (or continues) stage NAME and the untagged code
cells after it belong to it; ``parameters``, ``setup`` and ``skip`` cells
belong to no stage. Cells before the first stage tag form an implicit first
stage (with a warning). Markdown cells follow the stage they sit in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nbops.graph.issues import Issues
from nbops.graph.metrics import read_metrics
from nbops.graph.model import IMPLICIT_STAGE, Parameter, Stage
from nbops.graph.params import read_parameters
from nbops.notebook import Cell, CellTags, Notebook, TagError, read_cell_tags

__all__ = ["Assignment", "assign_cells"]


@dataclass
class Assignment:
    stages: dict[str, Stage] = field(default_factory=dict)  # in order of first appearance
    roles: dict[int, tuple[str, str | None]] = field(default_factory=dict)  # cell -> (role, stage)
    params: list[Parameter] = field(default_factory=list)
    params_cell: int | None = None
    setup: list[int] = field(default_factory=list)
    skip: list[int] = field(default_factory=list)
    after_cells: dict[tuple[str, str], int] = field(default_factory=dict)  # (stage, target) -> cell that asked


def assign_cells(nb: Notebook, issues: Issues) -> Assignment:
    out = Assignment()
    current: str | None = None
    pending_implicit: list[Cell] = []
    saw_stage_tag = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            if current:
                out.stages[current].cells.append(cell.index)
            out.roles[cell.index] = (cell.cell_type, current)
            continue
        try:
            tags = read_cell_tags(list(cell.tags), cell.source)
        except TagError as exc:
            issues.add(cell, str(exc), exc.fix, "bad-tag")
            out.roles[cell.index] = ("skip", None)
            continue
        for note in tags.notes:
            issues.add(cell, note.message, note.fix, note.code, kind="warning")
        if tags.role in ("parameters", "setup", "skip"):
            out.roles[cell.index] = (tags.role, None)
            if tags.role == "parameters":
                _parameters_cell(nb, cell, out, issues)
            elif tags.role == "setup":
                out.setup.append(cell.index)
            else:
                out.skip.append(cell.index)
            continue
        if tags.stage:
            saw_stage_tag = True
            current = tags.stage
            out.stages.setdefault(current, Stage(current))
        elif current is None:
            current = IMPLICIT_STAGE
            out.stages[current] = Stage(current, implicit=True)
            pending_implicit.append(cell)
        stage = out.stages[current]
        stage.cells.append(cell.index)
        out.roles[cell.index] = ("metrics" if tags.role == "metrics" else "stage", current)
        if tags.role == "metrics":
            stage.metrics += read_metrics(cell, issues)
        _merge_stage_tags(cell, stage, tags, out, issues)
    if not saw_stage_tag:
        # No stage at all: no implicit stage either (the panel colours cells by this).
        out.roles = {i: (role, None) for i, (role, _) in out.roles.items()}
        out.stages.clear()
        if not issues.has_error("bad-tag"):
            issues.add(
                None,
                "the notebook has no stages",
                "tag the first cell of each stage 'stage:NAME' (or start it with %%stage NAME); see the tag table in the README",
                "no-stages",
            )
    elif pending_implicit:
        issues.add(
            pending_implicit[0],
            f"cells before the first stage tag form an implicit first stage {IMPLICIT_STAGE!r}",
            "tag the first of them 'stage:NAME' to name it, or 'setup'/'skip' if they are not pipeline work",
            "implicit-stage",
            kind="warning",
        )
    return out


def _parameters_cell(nb: Notebook, cell: Cell, out: Assignment, issues: Issues) -> None:
    if out.params_cell is not None:
        first = nb.cells[out.params_cell]
        issues.add(
            cell,
            f'a second parameters cell (the first is cell {first.index}: "{first.first_line}")',
            "merge the parameters into one cell tagged 'parameters'",
            "two-parameters-cells",
        )
        return
    out.params_cell = cell.index
    out.params = read_parameters(cell, issues)


def _merge_stage_tags(cell: Cell, stage: Stage, tags: CellTags, out: Assignment, issues: Issues) -> None:
    """A stage's after, resource, cache and pod metadata tags may sit on any of its cells."""
    for target in tags.after:
        if target not in stage.after:
            stage.after.append(target)
            out.after_cells[(stage.name, target)] = cell.index
    for key, value in tags.resources.items():
        old = stage.resources.get(key)
        if old is not None and old != value:
            issues.add(
                cell,
                f"stage {stage.name!r} has conflicting {key} tags ({key}:{old} and {key}:{value})",
                f"keep one {key}: tag for the stage",
                "conflicting-resources",
            )
        else:
            stage.resources[key] = value
    if tags.cache is False:
        stage.cache = False
    for kind, found in (("annotation", tags.annotations), ("label", tags.labels)):
        known = stage.annotations if kind == "annotation" else stage.labels
        for key, value in found.items():
            if key in known and known[key] != value:
                issues.add(
                    cell,
                    f"stage {stage.name!r} has conflicting {kind} tags for {key!r} ({known[key]!r} and {value!r})",
                    f"keep one {kind}:{key}:VALUE tag for the stage",
                    "conflicting-resources",
                )
            else:
                known[key] = value
