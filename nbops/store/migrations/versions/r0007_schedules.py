"""Automation: schedules, their firings (each run at most once, under a lease), events, schedulers; a run's trigger.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("notebook", sa.Text, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("params", sa.Text, nullable=False, server_default="{}"),
        sa.Column("params_file", sa.Text),
        sa.Column("executor", sa.Text, nullable=False, server_default="local"),
        sa.Column("notify", sa.Text, nullable=False, server_default="[]"),
        sa.Column("notify_on", sa.Text, nullable=False, server_default="[]"),
        sa.Column("promote", sa.Text),
        sa.Column("options", sa.Text, nullable=False, server_default="{}"),
        sa.Column("paused", sa.Integer, nullable=False, server_default="0"),
        sa.Column("broken", sa.Text),
        sa.Column("state", sa.Text, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.Text),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "schedule_firings",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("due_at", sa.Float, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False, server_default="{}"),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text),
        sa.Column("owner", sa.Text),
        sa.Column("lease_until", sa.Float),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("ended_at", sa.Float),
        sa.Column("reason", sa.Text),
        sa.Column("outcome", sa.Text, nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("name", "key"),
    )
    op.create_index("schedule_firings_due", "schedule_firings", ["name", "due_at"])
    op.create_index("schedule_firings_status", "schedule_firings", ["status"])
    op.create_table(
        "schedule_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("key", sa.Text),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("target", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("schedule_events_name", "schedule_events", ["name", "id"])
    op.create_table(
        "schedulers",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
        sa.Column("stopping", sa.Integer, nullable=False, server_default="0"),
        sa.Column("info", sa.Text, nullable=False, server_default="{}"),
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("trigger", sa.Text))
