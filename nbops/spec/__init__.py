"""Pipeline spec: pipeline.yaml and the papermill-ready stage notebooks.

The converter (``convert``, ``render_stage_notebook``, ``edited_stage_notebooks``) imports the
stage graph; it is imported on first use, so reading a converted pipeline (a cached run) does not.
"""

from typing import Any

from nbops.spec.index import load_indexed, pipeline_key, write_index
from nbops.spec.pipeline import ARTIFACT_PARAM, SCHEMA, ParamSpec, PipelineSpec, StageSpec, load_pipeline, write_atomic

__all__ = [
    "ARTIFACT_PARAM",
    "SCHEMA",
    "ParamSpec",
    "PipelineSpec",
    "StageSpec",
    "convert",  # noqa: F822 (nbops.spec.converter, on first use)
    "edited_stage_notebooks",  # noqa: F822
    "load_indexed",
    "load_pipeline",
    "pipeline_key",
    "render_stage_notebook",  # noqa: F822
    "write_atomic",
    "write_index",
]

_CONVERTER = ("convert", "edited_stage_notebooks", "render_stage_notebook")


def __getattr__(name: str) -> Any:
    if name not in _CONVERTER:
        raise AttributeError(f"module 'nbops.spec' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module("nbops.spec.converter"), name)
    globals()[name] = value
    return value
