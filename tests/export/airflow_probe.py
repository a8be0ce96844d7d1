"""Run by .venv-airflow's python (not pytest): load a DAGs folder with Airflow's
own DagBag and print what the tests check, as JSON on the last line."""

import json
import sys
from datetime import timedelta


def describe(task):
    out = {
        "type": type(task).__name__,
        "upstream": sorted(task.upstream_task_ids),
        "retries": task.retries,
        "timeout_s": task.execution_timeout.total_seconds() if task.execution_timeout else None,
        "pool": task.pool,
        "pool_slots": task.pool_slots,
    }
    override = (getattr(task, "executor_config", None) or {}).get("pod_override")
    if override is not None:
        out["executor_resources"] = override.spec.containers[0].resources.to_dict()
    resources = getattr(task, "container_resources", None)
    if resources is not None:
        out["container_resources"] = resources.to_dict()
        out["image"] = task.image
        out["labels"] = task.labels
        out["annotations"] = task.annotations
    return out


def rendered_command(dag, task, run_id):
    """A pod task's command line as Airflow renders it for a run (its own Jinja, the DAG's params)."""
    context = {"params": {k: dag.params[k] for k in dag.params}, "run_id": run_id}
    return task.render_template(list(task.cmds), context) + task.render_template(list(task.arguments), context)


def main(folder, run_id=None):
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=folder)  # examples: AIRFLOW__CORE__LOAD_EXAMPLES=False in the environment
    dags = {}
    for dag_id, dag in bag.dags.items():
        dags[dag_id] = {
            "schedule": schedule.total_seconds() if isinstance(schedule := dag.schedule, timedelta) else schedule,
            "timezone": str(getattr(dag.timetable, "timezone", None) or dag.timezone),
            "params": {k: dag.params[k] for k in dag.params},
            "tasks": {t.task_id: describe(t) for t in dag.tasks},
        }
        if run_id and hasattr(dag.tasks[0], "cmds"):
            dags[dag_id]["commands"] = {t.task_id: rendered_command(dag, t, run_id) for t in dag.tasks}
    print(json.dumps({"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": dags}, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:])
