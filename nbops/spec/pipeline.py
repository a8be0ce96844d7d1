"""The pipeline spec: ``pipeline.yaml``, what the planner and executors read."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError, NotFoundError
from nbops.runtime.files import write_atomic

__all__ = ["ARTIFACT_PARAM", "SCHEMA", "StageSpec", "PipelineSpec", "ParamSpec", "load_pipeline", "write_atomic"]

SCHEMA = "nbops.pipeline/1"
ARTIFACT_PARAM = "nbops_artifact_dir"  # the stage parameter naming the folder of <stage>/ outputs


@dataclass
class ParamSpec:
    default: Any
    type: str


@dataclass
class StageSpec:
    name: str
    notebook: str  # relative to the pipeline folder
    upstream: list[str]
    inputs: dict[str, str]  # variable -> producing stage
    outputs: list[str]
    consumers: dict[str, list[str]]  # output variable -> stages reading it
    parameters: list[str]
    resources: dict[str, Any]
    cache: bool
    metrics: list[str]
    code_sha256: str
    source_cells: list[int] = field(default_factory=list)
    # Kale's pod metadata (annotation:KEY:VALUE, label:KEY:VALUE), kept for exports to Kubeflow.
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class PipelineSpec:
    name: str
    source_path: str  # source notebook, relative to the pipeline folder
    source_sha256: str
    kernel_name: str
    parameters: dict[str, ParamSpec]
    stages: list[StageSpec]  # topological order
    folder: Path | None = None  # where pipeline.yaml was read from (not serialized)
    schema: str = SCHEMA

    def stage(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def source_notebook(self) -> Path:
        assert self.folder is not None
        return (self.folder / self.source_path).resolve()

    def to_yaml(self) -> str:
        import yaml  # on use: a cached run reads spec.json (spec/index.py), never YAML

        data = {
            "schema": self.schema,
            "name": self.name,
            "source": {"path": self.source_path, "sha256": self.source_sha256},
            "kernel": self.kernel_name,
            "parameters": {k: asdict(v) for k, v in self.parameters.items()},
            "stages": [asdict(s) for s in self.stages],
        }
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)


def load_pipeline(folder: str | os.PathLike) -> PipelineSpec:
    import yaml

    path = Path(folder) / "pipeline.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise NotFoundError(f"{path} not found", "pass a notebook, or a folder made by 'nbops convert'") from None
    except yaml.YAMLError as exc:
        raise NbopsError(f"{path} is not valid YAML: {exc}", "re-create it with 'nbops convert'") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else None
        raise NbopsError(f"{path} has schema {found!r}, this nbops reads {SCHEMA!r}", "re-create it with 'nbops convert'")
    return PipelineSpec(
        name=data["name"],
        source_path=data["source"]["path"],
        source_sha256=data["source"]["sha256"],
        kernel_name=data.get("kernel", "python3"),
        parameters={k: ParamSpec(**v) for k, v in (data.get("parameters") or {}).items()},
        stages=[StageSpec(**s) for s in data["stages"]],
        folder=Path(folder).resolve(),
    )
