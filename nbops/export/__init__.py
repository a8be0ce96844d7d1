"""Export a tagged notebook's pipeline to an orchestrator a team already runs:
an Airflow DAG or a Kubeflow Pipelines v2 spec."""
