"""``nbops export NOTEBOOK --to airflow|kfp``: the pipeline for an orchestrator the team runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from nbops.cli.options import add_store_options

__all__ = ["register"]

TARGETS = ("airflow", "kfp")


def register(subparsers: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = subparsers.add_parser(
        "export",
        help="write the pipeline as an Airflow DAG or a Kubeflow Pipelines v2 spec",
        description="Airflow: -o DAGS_FOLDER (writes DAG_ID.py and DAG_ID/ with the stage notebooks). KFP: -o pipeline.yaml.",
    )
    p.add_argument("notebook")
    # Checked in the handler, not with choices=: the error then says what each target writes.
    p.add_argument("--to", required=True, metavar="TARGET", help="airflow or kfp")
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="airflow: the DAGs folder; kfp: the spec file (.yaml)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="a parameter's value in the export (repeatable)")
    p.add_argument("-f", "--params-file", metavar="YAML", help="parameter values from a YAML file")
    p.add_argument(
        "--image", help="container image with python3, papermill, nbops and the notebook's packages (airflow: KubernetesPodOperator; kfp: default python:3.11)"
    )
    when = p.add_mutually_exclusive_group()
    when.add_argument("--schedule", metavar="NAME", help="airflow: take the trigger and parameters of this stored schedule (nbops schedule ls)")
    when.add_argument("--cron", metavar="EXPR", help='airflow: the DAG\'s schedule, e.g. "0 3 * * *"')
    p.add_argument("--tz", metavar="ZONE", help="time zone of --cron (default UTC)")
    p.add_argument("--dag-id", metavar="ID", help="airflow: the DAG id (default: the notebook's name)")
    p.add_argument(
        "--papermill", metavar="PATH", help="airflow without --image: the papermill to run (default papermill; $NBOPS_PAPERMILL overrides at run time)"
    )
    p.add_argument(
        "--artifacts", metavar="DIR", help="airflow: root of the per-run artifact folders (default: $NBOPS_ARTIFACT_ROOT at run time, else a temp folder)"
    )
    p.add_argument("--pvc", metavar="CLAIM", help="airflow with --image: a ReadWriteMany volume claim every stage pod mounts for the artifacts")
    p.add_argument("--cwd", metavar="DIR", help="kfp: the stages' working directory inside the image (default: the image's)")
    p.add_argument("--kfp-python", metavar="PYTHON", help="kfp: a python that has the kfp SDK (default: this one, or $NBOPS_KFP_PYTHON)")
    add_store_options(p)
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    return {"export": _cmd_export}


def _cmd_export(a: argparse.Namespace) -> int:
    from nbops.cli import render
    from nbops.export import export

    result = export(
        a.notebook, a.to, a.output, params=a.param, params_file=a.params_file, image=a.image, schedule=a.schedule,
        cron=a.cron, tz=a.tz, store=a.store, dag_id=a.dag_id, papermill=a.papermill, artifact_root=a.artifacts,
        pvc=a.pvc, cwd=a.cwd, kfp_python=a.kfp_python,
    )  # fmt: skip
    if a.json:
        render.print_json(result)
        return 0
    if result["target"] == "airflow":
        render.console.print(f"wrote DAG {result['dag_id']!r}: {render.escape(result['dag_file'])} ({result['operator']} per stage) "
                             f"and {render.escape(result['folder'])}/ (pipeline.yaml, stages/)")  # fmt: skip
    else:
        render.console.print(f"wrote Kubeflow pipeline {result['pipeline']!r}: {render.escape(result['output'])} (image {render.escape(result['image'])})")
    for s in result["stages"]:
        res = ", ".join(f"{k}={v}" for k in ("gpus", "cpus", "memory", "retries", "timeout") if (v := s.get(k) if k in s else s.get("resources", {}).get(k)))
        ups = ", ".join(s["upstream"]) or "-"
        render.console.print(f"  {s['name']:<16} after {ups:<24} {res}")
    return 0
