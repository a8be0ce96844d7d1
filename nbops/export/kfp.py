"""``nbops export NOTEBOOK --to kfp -o pipeline.yaml``: a Kubeflow Pipelines v2 spec.

The spec is compiled by the ``kfp`` SDK's own Compiler (``kfp_compile.py``), in
this process when kfp imports here, else in the Python named by ``kfp_python``
or ``$NBOPS_KFP_PYTHON`` (kfp pins protobuf<7, which clashes with a current
environment: a separate venv with kfp is the usual setup).

Each stage becomes a container component running papermill on its stage notebook
(embedded in the spec, so the image needs no copy of it); pipeline parameters
are the pipeline's inputs; a stage's outputs folder is a KFP output artifact
that the stages reading from it take as input artifacts. Resources map to
``set_cpu_limit``/``set_memory_limit`` (requests equal to limits) and
``set_accelerator_type('nvidia.com/gpu')`` + ``set_accelerator_limit``;
``retries:N`` to ``set_retry``; ``timeout:S`` is enforced by the runner (KFP has
no task timeout); ``cache:off`` turns KFP's caching off for that stage.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
import zlib
from pathlib import Path
from typing import Any

from nbops.errors import NbopsError, UsageError
from nbops.export.common import cpu_quantity, export_params, identifier, memory_quantity, seconds, write_file_atomic
from nbops.spec import PipelineSpec, convert

__all__ = ["export_kfp", "kfp_plan", "DEFAULT_IMAGE"]

DEFAULT_IMAGE = "python:3.11"
KFP_PYTHON_ENV = "NBOPS_KFP_PYTHON"
HERE = Path(__file__).resolve().parent


def kfp_plan(spec: PipelineSpec, params: dict[str, Any], image: str, cwd: str | None) -> dict[str, Any]:
    """The JSON the compiler reads: stages in topological order with embedded notebooks."""
    types = {name: p.type for name, p in spec.parameters.items()}
    plan_params = {}
    for name, value in params.items():
        kind = types[name]
        if kind in ("int", "float", "bool", "str", "list", "dict"):
            plan_params[name] = {"type": kind, "default": value}
        else:  # a parameter whose default was None: JSON text, decoded by the runner
            plan_params[name] = {"type": "str", "default": json.dumps(value)}
    stages = []
    for s in spec.stages:
        assert spec.folder is not None
        raw = (spec.folder / s.notebook).read_bytes()
        r = s.resources
        stages.append(
            {
                "name": s.name,
                "notebook": base64.b64encode(zlib.compress(raw, 9)).decode(),
                "types": {p: types[p] for p in s.parameters},
                "timeout": seconds(r.get("timeout")),
                "cwd": cwd,
                "parameters": list(s.parameters),
                "inputs": sorted(set(s.inputs.values())),
                "upstream": list(s.upstream),
                "cache": bool(s.cache),
                "resources": {
                    "cpus": cpu_quantity(r["cpus"]) if r.get("cpus") else None,
                    "memory": memory_quantity(int(r["memory"])) if r.get("memory") else None,
                    "gpus": int(r.get("gpus") or 0),
                    "retries": int(r.get("retries") or 0),
                },
            }
        )
    return {
        "name": identifier(spec.name).replace("_", "-").lower(),
        "description": f"nbops pipeline {spec.name!r}, exported from {Path(spec.source_path).name}",
        "image": image,
        "runner": (HERE / "runner.py").read_text(encoding="utf-8"),
        "params": plan_params,
        "stages": stages,
    }


def export_kfp(
    graph,
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    params: list[str] | dict | None = None,
    params_file: str | None = None,
    image: str | None = None,
    cwd: str | None = None,
    kfp_python: str | None = None,
) -> dict[str, Any]:
    """Convert, plan, compile; ``output`` (a .yaml file) appears whole or not at all."""
    out = Path(output)
    if out.suffix not in (".yaml", ".yml"):
        raise UsageError(f"-o {output}: a KFP pipeline spec is one YAML file", "name it like -o pipeline.yaml")
    values = export_params(graph, params or [], params_file)
    with tempfile.TemporaryDirectory(prefix="nbops-kfp-") as tmp:
        spec = convert(graph, Path(tmp) / "pipeline", source)
        plan = kfp_plan(spec, values, image or DEFAULT_IMAGE, cwd)
        plan_path = Path(tmp) / "plan.json"
        plan_path.write_text(json.dumps(plan), encoding="utf-8")
        compiled = Path(tmp) / "pipeline.yaml"
        _compile(plan, plan_path, compiled, kfp_python)
        write_file_atomic(out, compiled.read_text(encoding="utf-8"))
    return {
        "target": "kfp",
        "output": str(out),
        "pipeline": plan["name"],
        "image": plan["image"],
        "parameters": values,
        "stages": [{"name": s["name"], "upstream": s["upstream"], "resources": s["resources"], "timeout": s["timeout"]} for s in plan["stages"]],
    }


def _compile(plan: dict, plan_path: Path, out: Path, kfp_python: str | None) -> None:
    python = kfp_python or os.environ.get(KFP_PYTHON_ENV) or None
    if python is None:
        try:
            import kfp  # noqa: F401
        except ImportError:
            raise NbopsError(
                "exporting to Kubeflow Pipelines needs the 'kfp' package, which this Python does not have",
                f"pip install kfp (in a separate venv if it clashes: kfp pins protobuf<7), then pass --kfp-python VENV/bin/python or set {KFP_PYTHON_ENV}",
            ) from None
        from nbops.export.kfp_compile import compile_plan

        compile_plan(plan, str(out))
        return
    if not Path(python).exists():
        raise UsageError(f"the Python for kfp, {python}, does not exist", f"pass --kfp-python (or {KFP_PYTHON_ENV}) naming a python that has kfp installed")
    # The source through -c, not the file's path: run as a script, its folder (nbops/export, which
    # holds this kfp.py) would come first on sys.path and shadow the kfp package.
    source = (HERE / "kfp_compile.py").read_text(encoding="utf-8")
    try:  # abspath, not resolve: a venv's python is a symlink, and the venv is what has kfp
        proc = subprocess.run([os.path.abspath(python), "-c", source, str(plan_path), str(out)], capture_output=True, text=True, cwd=plan_path.parent)
    except OSError as exc:
        raise UsageError(f"the Python for kfp, {python}, cannot be run: {exc.strerror}", "pass --kfp-python naming a python executable that has kfp") from None
    if proc.returncode != 0 or not out.exists():
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        if "No module named 'kfp'" in proc.stderr:
            raise NbopsError(f"{python} has no kfp", "pip install kfp into that environment (tool venv: bash .ci/install-export-tools.sh)")
        raise NbopsError(
            f"kfp could not compile the pipeline:\n{tail}", "this is a bug in nbops's KFP export if the notebook converts; report it with the message"
        )
