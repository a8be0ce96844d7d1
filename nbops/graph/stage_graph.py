"""From a tagged notebook to a stage graph: stages, data edges, errors.

``build_graph`` never raises for a problem in the notebook: problems are
``CellIssue``s in ``graph.errors`` / ``graph.warnings`` (the JupyterLab panel
shows a partial graph next to its errors). ``graph.raise_for_errors()`` turns
them into one ``GraphError`` for the CLI and the converter.

The steps, one module each:
  assign       cells -> stages and roles, from tags (params, metrics read there)
  definitions  what each cell defines; where a read name comes from
  setup_cells  which setup cells and parameters each setup cell needs
  edges        each stage's inputs, parameters and setup cells
  order        edges, topological order, cycles
"""

from __future__ import annotations

from nbops.graph.assign import assign_cells
from nbops.graph.definitions import Definitions, analyze_cells
from nbops.graph.edges import resolve_inputs
from nbops.graph.issues import Issues
from nbops.graph.model import IMPLICIT_STAGE, Edge, Parameter, Stage, StageGraph
from nbops.graph.order import order_stages
from nbops.graph.setup_cells import close_setup
from nbops.notebook import Notebook
from nbops.notebook.tags import RESOURCE_KEYS

__all__ = ["Stage", "Edge", "Parameter", "StageGraph", "build_graph", "IMPLICIT_STAGE"]


def build_graph(nb: Notebook) -> StageGraph:
    """The stage graph of ``nb``, with every problem found as an error or warning."""
    issues = Issues()
    assigned = assign_cells(nb, issues)
    analysis = analyze_cells(nb, assigned.roles, issues)
    if assigned.stages:
        defs = Definitions(nb, assigned, analysis, issues)
        closure = close_setup(nb, assigned, analysis, defs, issues)
        resolve_inputs(assigned, analysis, defs, closure)
    stages, edges = order_stages(nb, assigned, issues)
    for stage in stages:
        stage.resources.setdefault("retries", 0)
        if stage.resources.get("gpus") is None:
            stage.resources["gpus"] = 0
        stage.resources = {k: stage.resources.get(k) for k in RESOURCE_KEYS}
    return StageGraph(nb, stages, edges, assigned.params, assigned.params_cell, assigned.setup, assigned.roles, issues.errors, issues.warnings)
