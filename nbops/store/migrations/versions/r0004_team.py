"""A team store: who ran each run, and the indexes that keep listing fast at 100,000 runs.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("runs") as t:
        t.add_column(sa.Column("user", sa.Text))
    op.create_index("runs_status", "runs", ["status"])
    op.create_index("runs_user", "runs", ["user", "started_at"])
