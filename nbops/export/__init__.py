"""Export a tagged notebook's pipeline to an orchestrator a team already runs:
an Airflow DAG (``airflow.py``) or a Kubeflow Pipelines v2 spec (``kfp.py``).

Both convert the notebook as ``nbops convert`` does (the same analysis errors,
the same papermill stage notebooks) and run each stage's notebook with papermill
under the orchestrator, handing outputs on as ``nbops_artifact_dir`` folders."""

from __future__ import annotations

import os
from typing import Any

from nbops.errors import UsageError

__all__ = ["export", "TARGETS"]

TARGETS = {"airflow": "an Airflow DAG file and its stage notebooks (-o DAGS_FOLDER)", "kfp": "a Kubeflow Pipelines v2 spec (-o pipeline.yaml)"}


def export(
    notebook: str | os.PathLike,
    to: str,
    output: str | os.PathLike,
    *,
    params: list[str] | dict | None = None,
    params_file: str | None = None,
    image: str | None = None,
    schedule: str | None = None,
    cron: str | None = None,
    tz: str | None = None,
    store: str | None = None,
    dag_id: str | None = None,
    papermill: str | None = None,
    artifact_root: str | None = None,
    pvc: str | None = None,
    cwd: str | None = None,
    kfp_python: str | None = None,
) -> dict[str, Any]:
    """Write the export; return what was written. Bad input raises before anything is written."""
    if to not in TARGETS:
        raise UsageError(f"--to {to!r} is not an export target", "use " + "; ".join(f"--to {k} ({v})" for k, v in TARGETS.items()))
    from nbops.api import load_graph

    if tz is not None and cron is None:
        raise UsageError("--tz applies to --cron only", "drop --tz, or add --cron EXPR")
    airflow_only = {"--schedule": schedule, "--cron": cron, "--dag-id": dag_id, "--papermill": papermill, "--artifacts": artifact_root, "--pvc": pvc}
    kfp_only = {"--cwd": cwd, "--kfp-python": kfp_python}
    wrong = [k for k, v in (airflow_only if to == "kfp" else kfp_only).items() if v is not None]
    if wrong:
        raise UsageError(f"{', '.join(wrong)} do{'es' if len(wrong) == 1 else ''} not apply to --to {to}", f"drop {', '.join(wrong)}")
    graph = load_graph(notebook).raise_for_errors()  # the errors of 'nbops convert', before anything is written
    if to == "kfp":
        from nbops.export.kfp import export_kfp

        return export_kfp(graph, notebook, output, params=params, params_file=params_file, image=image, cwd=cwd, kfp_python=kfp_python)

    from nbops.export.airflow import export_airflow
    from nbops.export.common import schedule_from_cron, schedule_from_store

    when, base = None, None
    if cron is not None:
        when = schedule_from_cron(cron, tz)
    elif schedule is not None:
        when, base = schedule_from_store(schedule, store, notebook)
    return export_airflow(
        graph, notebook, output, params=params, params_file=params_file, schedule=when, base_params=base, image=image,
        pvc=pvc, papermill=papermill, artifact_root=artifact_root, dag_id=dag_id,
    )  # fmt: skip
