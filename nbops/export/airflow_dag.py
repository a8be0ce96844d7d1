"""The text of an exported Airflow DAG file.

The file is data at the top (parameters, stages with their upstream, resources
and policy) and one short loop that makes the tasks, so a reviewer reads what
the pipeline is without reading generated code. It imports only Airflow (and the
Kubernetes provider when an image is given): nbops need not be installed where
Airflow parses DAGs, only where the stage notebooks run.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["render_dag"]

HEADER = '''"""Airflow DAG {dag_id!r}: the nbops pipeline {name!r}, exported by `nbops export --to airflow`.

Do not edit: change the notebook ({source}) and export again.
Stages run their papermill stage notebooks (folder {folder!r} beside this file)
with the DAG's parameters (trigger with a config to override them). Outputs pass
between stages through a folder per DAG run: $NBOPS_ARTIFACT_ROOT/{dag_id}/<run id>/
(default {artifact_root!r}); workers need it shared when they run on several machines.
Schedule: {schedule_doc}.
Resources: {resources_doc}
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow import DAG
'''

BASH_IMPORTS = """
try:
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator
"""

POD_IMPORTS = """
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s
"""

CONSTANTS = """
HERE = Path(__file__).resolve().parent
PIPELINE = HERE / {folder!r}
WORKDIR = (HERE / {workdir!r}).resolve()  # the source notebook's folder: relative paths in the notebook hold
PAPERMILL = os.environ.get("NBOPS_PAPERMILL", {papermill!r})
ARTIFACT_ROOT = os.environ.get("NBOPS_ARTIFACT_ROOT", {artifact_root!r})
GPU_POOL = "nbops_gpu"  # create it with one slot per GPU: airflow pools set nbops_gpu <GPUs> "GPUs for nbops stages"

PARAMS = {params}

# stage -> its notebook, upstream stages, the parameters it reads, resources (Kubernetes quantities), retries, timeout (s)
STAGES = {stages}
"""

BASH_BODY = '''
RUN_ID = "{{{{ run_id | replace(':', '-') | replace('+', '_') }}}}"
COMMAND = """set -euo pipefail
run="$NBOPS_ARTIFACT_ROOT/{dag_id}/$NBOPS_RUN_ID"
mkdir -p "$run/notebooks"
"$NBOPS_PAPERMILL" "$NBOPS_NOTEBOOK" "$run/notebooks/$NBOPS_STAGE.ipynb" -y "$NBOPS_PARAMS" \\\\
  -p nbops_artifact_dir "$run/artifacts" --cwd "$NBOPS_CWD"
"""


def stage_params(names):
    # Jinja renders the run's parameter values (DAG params, overridden by a trigger's config) as JSON.
    return "{{{{ {{" + ", ".join(f"{{n!r}}: params[{{n!r}}]" for n in names) + "}} | tojson }}}}"


def policy(stage):
    kw = {{"retries": stage["retries"]}}
    if stage["timeout"]:
        kw["execution_timeout"] = timedelta(seconds=stage["timeout"])
    if stage["gpus"]:
        kw.update(pool=GPU_POOL, pool_slots=stage["gpus"])
    requests = {{k: v for k, v in (("cpu", stage["cpus"]), ("memory", stage["memory"])) if v}}
    if requests or stage["gpus"]:
        # Honoured by the KubernetesExecutor (a pod per task); other executors ignore it.
        try:
            from kubernetes.client import models as k8s

            limits = dict(requests, **({{"nvidia.com/gpu": str(stage["gpus"])}} if stage["gpus"] else {{}}))
            container = k8s.V1Container(name="base", resources=k8s.V1ResourceRequirements(requests=requests, limits=limits))
            kw["executor_config"] = {{"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(containers=[container]))}}
        except ImportError:
            pass
    return kw


with DAG(**DAG_ARGS) as dag:
    tasks = {{}}
    for name, stage in STAGES.items():
        tasks[name] = BashOperator(
            task_id=name,
            bash_command=COMMAND,
            env={{
                "NBOPS_PAPERMILL": PAPERMILL,
                "NBOPS_ARTIFACT_ROOT": ARTIFACT_ROOT,
                "NBOPS_RUN_ID": RUN_ID,
                "NBOPS_STAGE": name,
                "NBOPS_NOTEBOOK": str(PIPELINE / stage["notebook"]),
                "NBOPS_CWD": str(WORKDIR),
                "NBOPS_PARAMS": stage_params(stage["parameters"]),
            }},
            append_env=True,
            **policy(stage),
        )
    for name, stage in STAGES.items():
        for upstream in stage["upstream"]:
            tasks[upstream] >> tasks[name]
'''

POD_BODY = """
IMAGE = {image!r}
PVC = {pvc!r}  # a ReadWriteMany claim mounted at ARTIFACT_ROOT in every pod: how stages hand outputs on
RUNNER = (PIPELINE / "runner.py").read_text()
RUN_ID = "{{{{ run_id | replace(':', '-') | replace('+', '_') }}}}"


def resources(stage):
    requests = {{k: v for k, v in (("cpu", stage["cpus"]), ("memory", stage["memory"])) if v}}
    limits = dict(requests, **({{"nvidia.com/gpu": str(stage["gpus"])}} if stage["gpus"] else {{}}))
    return k8s.V1ResourceRequirements(requests=requests or None, limits=limits or None)


def stage_spec(name, stage):
    import base64
    import json
    import zlib

    notebook = base64.b64encode(zlib.compress((PIPELINE / stage["notebook"]).read_bytes(), 9)).decode()
    types = {{p: PARAM_TYPES[p] for p in stage["parameters"]}}
    return json.dumps({{"stage": name, "notebook": notebook, "types": types, "timeout": stage["timeout"], "cwd": None}})


def stage_params(names):
    return "{{{{ {{" + ", ".join(f"{{n!r}}: params[{{n!r}}]" for n in names) + "}} | tojson }}}}"


volumes = [k8s.V1Volume(name="nbops-artifacts", persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(claim_name=PVC))] if PVC else []
mounts = [k8s.V1VolumeMount(name="nbops-artifacts", mount_path=ARTIFACT_ROOT)] if PVC else []

with DAG(**DAG_ARGS) as dag:
    tasks = {{}}
    for name, stage in STAGES.items():
        tasks[name] = KubernetesPodOperator(
            task_id=name,
            name=f"{dag_id}-{{name}}".replace("_", "-").lower(),
            image=IMAGE,
            cmds=["python3", "-c", RUNNER],
            arguments=[stage_spec(name, stage), "--params-json", stage_params(stage["parameters"]),
                       "--artifacts", f"{{ARTIFACT_ROOT}}/{dag_id}/{{RUN_ID}}/artifacts"],
            container_resources=resources(stage),
            volumes=volumes,
            volume_mounts=mounts,
            labels=stage["labels"],
            annotations=stage["annotations"],
            retries=stage["retries"],
            execution_timeout=timedelta(seconds=stage["timeout"]) if stage["timeout"] else None,
            pool=GPU_POOL if stage["gpus"] else None,
            pool_slots=max(1, stage["gpus"]),
        )
    for name, stage in STAGES.items():
        for upstream in stage["upstream"]:
            tasks[upstream] >> tasks[name]
"""


def _literal(value: dict[str, Any]) -> str:
    """A dict literal, one entry a line (reads and diffs better than pprint's wrapping)."""
    if not value:
        return "{}"
    return "{\n" + "".join(f"    {k!r}: {v!r},\n" for k, v in value.items()) + "}"


def render_dag(ctx: dict[str, Any]) -> str:
    """``ctx``: dag_id, name, source, folder, workdir, papermill, artifact_root, params,
    param_types, stages, schedule (python expression), start_date (expression),
    schedule_doc, resources_doc, image, pvc."""
    text = HEADER.format(**ctx)
    text += POD_IMPORTS if ctx["image"] else BASH_IMPORTS
    text += CONSTANTS.format(folder=ctx["folder"], workdir=ctx["workdir"], papermill=ctx["papermill"],
                             artifact_root=ctx["artifact_root"], params=_literal(ctx["params"]), stages=_literal(ctx["stages"]))  # fmt: skip
    if ctx["image"]:
        text += f"PARAM_TYPES = {_literal(ctx['param_types'])}\n"
    text += (
        "\nDAG_ARGS = dict(\n"
        f"    dag_id={ctx['dag_id']!r},\n"
        f"    description={('nbops pipeline ' + repr(ctx['name']))!r},\n"
        f"    schedule={ctx['schedule']},\n"
        f"    start_date={ctx['start_date']},\n"
        "    catchup=False,\n"
        "    max_active_runs=1,\n"
        "    params=PARAMS,\n"
        '    tags=["nbops"],\n'
        "    doc_md=__doc__,\n"
        ")\n"
    )
    body = POD_BODY if ctx["image"] else BASH_BODY
    text += body.format(dag_id=ctx["dag_id"], image=ctx["image"], pvc=ctx["pvc"])
    json.dumps(ctx["params"])  # the parameters must be JSON: Airflow stores them so
    return text
