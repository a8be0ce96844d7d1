"""The first release's tables: runs, stages, studies.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("notebook", sa.Text),
        sa.Column("pipeline_dir", sa.Text),
        sa.Column("pipeline_sha256", sa.Text),
        sa.Column("notebook_sha256", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("params", sa.Text, nullable=False, server_default="{}"),
        sa.Column("env", sa.Text, nullable=False, server_default="{}"),
        sa.Column("git", sa.Text),
        sa.Column("executor", sa.Text),
        sa.Column("kind", sa.Text, nullable=False, server_default="run"),
        sa.Column("parent_id", sa.Text),
        sa.Column("study", sa.Text),
        sa.Column("trial", sa.Integer),
        sa.Column("host", sa.Text),
        sa.Column("pid", sa.Integer),
        sa.Column("pid_start", sa.Text),
        sa.Column("heartbeat", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("report", sa.Text),
    )
    op.create_index("runs_started", "runs", ["started_at"])
    op.create_index("runs_study", "runs", ["study"])
    op.create_table(
        "stages",
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("ended_at", sa.Float),
        sa.Column("cache_key", sa.Text),
        sa.Column("cached_from", sa.Text),
        sa.Column("notebook_sha256", sa.Text),
        sa.Column("outputs", sa.Text, nullable=False, server_default="{}"),
        sa.Column("scalars", sa.Text, nullable=False, server_default="{}"),
        sa.Column("metrics", sa.Text, nullable=False, server_default="[]"),
        sa.Column("checks", sa.Text, nullable=False, server_default="[]"),
        sa.Column("inputs", sa.Text, nullable=False, server_default="[]"),
        sa.Column("artifacts", sa.Text, nullable=False, server_default="[]"),
        sa.Column("error", sa.Text),
        sa.Column("worker", sa.Text, nullable=False, server_default="{}"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("run_id", "name"),
    )
    op.create_index("stages_cache", "stages", ["cache_key", "status"])
    op.create_table(
        "studies",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
    )
