"""The converter: a stage graph into ``pipeline.yaml`` + one notebook per stage.

Each stage notebook is plain papermill input:
  1. the parameters cell (tagged ``parameters``): the pipeline parameters the
     stage reads, with the source defaults, plus ``nbops_artifact_dir``;
  2. a generated inputs cell: loads each input from its producer's folder;
  3. the setup cells the stage needs, then re-imports of modules it uses;
  4. the stage's own cells (pipeline magics stripped, outputs cleared);
  5. a generated outputs cell: saves what later stages read, evaluates the
     metrics cell, notes scalar variables.
Output is deterministic (stable cell ids, sorted keys, no timestamps) and
holds only relative paths, so converting twice gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from nbops.graph import StageGraph
from nbops.notebook import strip_pipeline_magic
from nbops.spec.pipeline import ARTIFACT_PARAM, ParamSpec, PipelineSpec, StageSpec, write_atomic

__all__ = ["convert", "ARTIFACT_PARAM", "render_stage_notebook", "edited_stage_notebooks"]


def _cell(kind: str, source: str, cell_id: str, tags: list[str] | None = None, source_cell: int | None = None) -> dict:
    # Plain nbformat 4.5 cells (see the reader on why not the nbformat package).
    cell: dict = {"cell_type": kind, "id": cell_id, "metadata": {}, "source": source}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    if tags:
        cell["metadata"]["tags"] = tags
    if source_cell is not None:  # lets errors point at the cell of the user's notebook
        cell["metadata"]["nbops"] = {"source_cell": source_cell}
    return cell


def render_stage_notebook(graph: StageGraph, stage_name: str) -> dict:
    stage = graph.stage(stage_name)
    nb = graph.notebook
    consumers = _consumers(graph)
    params = {p.name: p for p in graph.parameters}

    lines = [f"# Parameters of stage {stage.name!r} (defaults from the source notebook)"]
    lines += [f"{name} = {params[name].default!r}" for name in stage.parameters]
    lines.append(f"{ARTIFACT_PARAM} = 'artifacts'  # folder holding <stage>/ outputs")
    cells = [_cell("code", "\n".join(lines), "nbops-parameters", ["parameters"])]

    inputs = ["# nbops: load this stage's inputs (generated)", "import nbops.runtime.marshal as _nbops_marshal", ""]
    inputs.append(f"_nbops_marshal.begin({stage.name!r}, {ARTIFACT_PARAM})")
    for var, producer in sorted(stage.inputs.items()):
        inputs.append(f"{var} = _nbops_marshal.load_input({ARTIFACT_PARAM}, {producer!r}, {var!r}, {stage.name!r})")
    cells.append(_cell("code", "\n".join(inputs), "nbops-inputs", ["nbops-generated"]))

    for index in stage.setup_cells:
        src = strip_pipeline_magic(nb.cells[index].source)
        cells.append(_cell("code", src, _cell_id(nb, index), ["setup"], index))
    if stage.reimports:
        body = "# nbops: modules imported by earlier stages (generated)\n" + "\n".join(stmt for _, stmt in sorted(stage.reimports.items()))
        cells.append(_cell("code", body, "nbops-imports", ["nbops-generated"]))

    for index in stage.cells:
        src_cell = nb.cells[index]
        if src_cell.cell_type == "code":
            cells.append(_cell("code", strip_pipeline_magic(src_cell.source), _cell_id(nb, index), None, index))
        elif src_cell.cell_type == "markdown":
            cells.append(_cell("markdown", src_cell.source, _cell_id(nb, index), None, index))

    outputs = {v: consumers.get((stage.name, v), []) for v in stage.outputs}
    scalars = sorted(stage.defines)
    out = [
        "# nbops: save this stage's outputs (generated)",
        f"_nbops_marshal.end({stage.name!r}, {ARTIFACT_PARAM}, globals(),",
        f"    outputs={json.dumps(outputs, sort_keys=True)},",
        f"    metrics={json.dumps(stage.metrics)},",
        f"    scalars={json.dumps(scalars)})",
    ]
    cells.append(_cell("code", "\n".join(out), "nbops-outputs", ["nbops-generated"]))

    meta = dict(nb.node.get("metadata") or {})
    doc = {"cells": cells, "nbformat": 4, "nbformat_minor": 5}
    doc["metadata"] = {
        "kernelspec": meta.get("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"}),
        "language_info": {"name": meta.get("language_info", {}).get("name", "python")},
        "nbops": {"stage": stage.name, "source_cells": [i for i in stage.cells]},
    }
    return doc


def _cell_id(nb, index: int) -> str:
    cid = nb.node["cells"][index].get("id")
    return cid if isinstance(cid, str) and cid else f"cell-{index}"


def _consumers(graph: StageGraph) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for s in graph.stages:
        for var, producer in s.inputs.items():
            out.setdefault((producer, var), []).append(s.name)
    return {k: sorted(v) for k, v in out.items()}


def edited_stage_notebooks(spec: PipelineSpec) -> list[str]:
    """Stages whose notebook no longer has the code hash pipeline.yaml recorded
    (edited, truncated or missing since the conversion): running them would
    record, and cache, code under a key that is not its own."""
    edited = []
    for stage in spec.stages:
        try:
            doc = json.loads((spec.folder / stage.notebook).read_text(encoding="utf-8"))
            same = _code_hash(doc) == stage.code_sha256
        except (OSError, ValueError, KeyError, TypeError):
            same = False
        if not same:
            edited.append(stage.name)
    return edited


def _code_hash(doc: dict) -> str:
    """What makes the stage's code: every cell but the parameters cell (values are hashed apart)."""
    parts = [doc["metadata"]["kernelspec"].get("name", "")]
    parts += [c["cell_type"] + "\0" + c["source"] for c in doc["cells"] if c.get("id") != "nbops-parameters"]
    return hashlib.sha256("\0\0".join(parts).encode()).hexdigest()


def convert(graph: StageGraph, out_dir: str | os.PathLike, source_path: str | os.PathLike | None = None) -> PipelineSpec:
    """Write ``out_dir/pipeline.yaml`` and ``out_dir/stages/*.ipynb``. Raises GraphError on errors."""
    graph.raise_for_errors()
    out = Path(out_dir)
    source = Path(source_path or graph.notebook.path).resolve()
    consumers = _consumers(graph)
    stage_specs = []
    written = set()
    for stage in graph.stages:
        doc = render_stage_notebook(graph, stage.name)
        text = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        rel = f"stages/{stage.name}.ipynb"
        write_atomic(out / rel, text)
        written.add(f"{stage.name}.ipynb")
        stage_specs.append(
            StageSpec(
                name=stage.name,
                notebook=rel,
                upstream=stage.upstream,
                inputs=dict(sorted(stage.inputs.items())),
                outputs=stage.outputs,
                consumers={v: consumers.get((stage.name, v), []) for v in stage.outputs},
                parameters=stage.parameters,
                resources=stage.resource_json(),
                cache=stage.cache,
                metrics=stage.metrics,
                code_sha256=_code_hash(doc),
                source_cells=[i for i in stage.cells if graph.notebook.cells[i].cell_type == "code"],
                annotations=dict(sorted(stage.annotations.items())),
                labels=dict(sorted(stage.labels.items())),
            )
        )
    # Stage notebooks of stages that no longer exist would mislead: remove them.
    stages_dir = out / "stages"
    for old in stages_dir.glob("*.ipynb"):
        if old.name not in written:
            old.unlink()
    spec = PipelineSpec(
        name=graph.notebook.name,
        source_path=os.path.relpath(source, out.resolve()),
        source_sha256=graph.notebook.sha256,
        kernel_name=graph.notebook.kernel_name,
        parameters={p.name: ParamSpec(p.default, p.type) for p in graph.parameters},
        stages=stage_specs,
        folder=out.resolve(),
    )
    write_atomic(out / "pipeline.yaml", spec.to_yaml())
    return spec
