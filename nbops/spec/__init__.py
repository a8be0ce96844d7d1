"""Pipeline spec: pipeline.yaml and the papermill-ready stage notebooks."""

from nbops.spec.convert import ARTIFACT_PARAM, convert, edited_stage_notebooks, render_stage_notebook
from nbops.spec.pipeline import SCHEMA, ParamSpec, PipelineSpec, StageSpec, load_pipeline, write_atomic

__all__ = [
    "ARTIFACT_PARAM",
    "SCHEMA",
    "ParamSpec",
    "PipelineSpec",
    "StageSpec",
    "convert",
    "edited_stage_notebooks",
    "load_pipeline",
    "render_stage_notebook",
    "write_atomic",
]
