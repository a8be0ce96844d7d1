"""``nbops export NOTEBOOK --to airflow -o dags/``: an Airflow DAG.

Writes ``dags/<dag_id>.py`` and, beside it, ``dags/<dag_id>/`` holding what
``nbops convert`` writes (pipeline.yaml, stages/*.ipynb). One task per stage,
edges from the stage graph, the schedule from ``--cron`` or a stored schedule.

What a stage's tags become:
- without ``--image``: a BashOperator running ``papermill`` (``--papermill``, or
  ``$NBOPS_PAPERMILL`` at run time: the Python whose kernel has nbops and the
  notebook's packages) on the stage notebook. ``gpus:N`` takes N slots of the
  pool ``nbops_gpu``; cpus/memory/gpus also go into ``executor_config``'s
  pod_override, which the KubernetesExecutor applies (other executors ignore it).
- with ``--image``: a KubernetesPodOperator per stage with
  ``container_resources`` (requests = limits; GPUs as ``nvidia.com/gpu``); stages
  hand outputs on through a shared volume (``--pvc``) mounted at the artifact root.
- ``retries:N`` -> ``retries``, ``timeout:S`` -> ``execution_timeout``.

Outputs pass between stages through ``<artifact root>/<dag_id>/<run id>/artifacts``,
one folder per DAG run (the run id made file-name safe); executed notebooks land in
``.../notebooks/<stage>.ipynb``. Writing is atomic: the stage folder is swapped in
by renames and the DAG file is renamed into place last, so a scheduler parsing the
folder never sees a DAG whose notebooks are missing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from nbops.errors import UsageError
from nbops.export.airflow_dag import render_dag
from nbops.export.common import Schedule, cpu_quantity, export_params, identifier, memory_quantity, seconds, staged_folder, write_file_atomic
from nbops.spec import PipelineSpec, convert

__all__ = ["export_airflow", "dag_context"]

HERE = Path(__file__).resolve().parent
START_DATE = (2025, 1, 1)  # fixed: output is the same on every export; catchup=False runs no past dates


def _schedule_expr(schedule: Schedule | None) -> tuple[str, str, str]:
    """(schedule expression, start_date expression, a sentence for the docstring)."""
    if schedule is None:
        return "None", f'pendulum.datetime({START_DATE[0]}, {START_DATE[1]}, {START_DATE[2]}, tz="UTC")', "none (trigger it by hand or by API)"
    tz = schedule.tz if schedule.cron else "UTC"
    start = f"pendulum.datetime({START_DATE[0]}, {START_DATE[1]}, {START_DATE[2]}, tz={tz!r})"
    if schedule.cron:
        return repr(schedule.cron), start, f"cron {schedule.cron!r} in {tz} (from {schedule.source})"
    return f"timedelta(seconds={schedule.every_s})", start, f"every {schedule.every_s} s (from {schedule.source})"


def dag_context(
    spec: PipelineSpec,
    params: dict[str, Any],
    *,
    dag_id: str,
    dags_dir: Path,
    schedule: Schedule | None,
    papermill: str,
    artifact_root: str,
    image: str | None,
    pvc: str | None,
) -> dict[str, Any]:
    assert spec.folder is not None
    stages = {}
    for s in spec.stages:
        r = s.resources
        stages[s.name] = {
            "notebook": s.notebook,
            "upstream": list(s.upstream),
            "parameters": list(s.parameters),
            "gpus": int(r.get("gpus") or 0),
            "cpus": cpu_quantity(r["cpus"]) if r.get("cpus") else None,
            "memory": memory_quantity(int(r["memory"])) if r.get("memory") else None,
            "retries": int(r.get("retries") or 0),
            "timeout": seconds(r.get("timeout")),
        }
        if image:
            stages[s.name].update(labels=dict(s.labels), annotations=dict(s.annotations))
    sched, start, sched_doc = _schedule_expr(schedule)
    if image:
        res_doc = "a KubernetesPodOperator per stage, container_resources from its tags (gpus as nvidia.com/gpu)."
    else:
        res_doc = "gpus:N takes N slots of pool nbops_gpu; cpus/memory/gpus also in executor_config (KubernetesExecutor)."
    source = spec.source_notebook
    return {
        "dag_id": dag_id,
        "name": spec.name,
        "source": os.path.relpath(source, dags_dir.resolve()),
        "folder": dag_id,
        "workdir": os.path.relpath(source.parent, dags_dir.resolve()),
        "papermill": papermill,
        "artifact_root": artifact_root,
        "params": params,
        "param_types": {n: p.type for n, p in spec.parameters.items()},
        "stages": stages,
        "schedule": sched,
        "start_date": start,
        "schedule_doc": sched_doc,
        "resources_doc": res_doc,
        "image": image,
        "pvc": pvc,
    }


def export_airflow(
    graph,
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    params: list[str] | dict | None = None,
    params_file: str | None = None,
    schedule: Schedule | None = None,
    base_params: dict[str, Any] | None = None,
    image: str | None = None,
    pvc: str | None = None,
    papermill: str | None = None,
    artifact_root: str | None = None,
    dag_id: str | None = None,
) -> dict[str, Any]:
    """Write ``output/<dag_id>.py`` and ``output/<dag_id>/``; return what was written."""
    dags_dir = Path(output)
    if dags_dir.suffix == ".py" or (dags_dir.exists() and not dags_dir.is_dir()):
        raise UsageError(f"-o {output}: an Airflow export writes into a folder (the DAGs folder)", "pass a folder, like -o dags/")
    if pvc and not image:
        raise UsageError("--pvc applies to --image (pods mount it to hand outputs on)", "add --image IMAGE, or drop --pvc")
    dag_id = identifier(dag_id or graph.notebook.name)
    root = artifact_root or os.path.join(tempfile.gettempdir(), "nbops-airflow")
    if image and not artifact_root:
        root = "/nbops-artifacts"  # a path inside the pods, where --pvc is mounted
    values = export_params(graph, params or [], params_file, base=base_params)
    with staged_folder(dags_dir / dag_id) as folder:
        spec = convert(graph, folder, source)
        if image:
            shutil.copyfile(HERE / "runner.py", folder / "runner.py")
            # Airflow parses every .py under the DAGs folder: the runner is not a DAG.
            (folder / ".airflowignore").write_text("runner.py\n", encoding="utf-8")
        ctx = dag_context(
            spec, values, dag_id=dag_id, dags_dir=dags_dir, schedule=schedule,
            papermill=papermill or "papermill", artifact_root=root, image=image, pvc=pvc,
        )  # fmt: skip
        text = render_dag(ctx)
        compile(text, f"{dag_id}.py", "exec")  # a bug here must not reach the DAGs folder
    dag_file = dags_dir / f"{dag_id}.py"
    write_file_atomic(dag_file, text)
    return {
        "target": "airflow",
        "dag_id": dag_id,
        "dag_file": str(dag_file),
        "folder": str(dags_dir / dag_id),
        "operator": "KubernetesPodOperator" if image else "BashOperator",
        "image": image,
        "schedule": None if schedule is None else ({"cron": schedule.cron, "tz": schedule.tz} if schedule.cron else {"every_s": schedule.every_s}),
        "artifact_root": root,
        "parameters": values,
        "stages": [{"name": n, **{k: v for k, v in s.items() if k != "notebook"}} for n, s in ctx["stages"].items()],
    }
