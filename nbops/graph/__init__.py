"""The stage graph: stages, data edges and errors, by static analysis."""

from nbops.graph.analysis import CellAnalysis, analyze_source, strip_pipeline_magic
from nbops.graph.stage_graph import IMPLICIT_STAGE, Edge, Parameter, Stage, StageGraph, build_graph

__all__ = [
    "CellAnalysis",
    "Edge",
    "IMPLICIT_STAGE",
    "Parameter",
    "Stage",
    "StageGraph",
    "analyze_source",
    "build_graph",
    "strip_pipeline_magic",
]
