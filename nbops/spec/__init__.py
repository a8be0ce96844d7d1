"""Pipeline spec: pipeline.yaml and the papermill-ready stage notebooks."""

from nbops.spec.convert import ARTIFACT_PARAM, convert, render_stage_notebook
from nbops.spec.pipeline import SCHEMA, ParamSpec, PipelineSpec, StageSpec, load_pipeline, write_atomic

__all__ = [
    "ARTIFACT_PARAM",
    "SCHEMA",
    "ParamSpec",
    "PipelineSpec",
    "StageSpec",
    "convert",
    "load_pipeline",
    "render_stage_notebook",
    "write_atomic",
]
