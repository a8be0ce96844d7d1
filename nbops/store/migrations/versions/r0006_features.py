"""The feature store: feature tables, their published versions, and what each online store holds.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "feature_tables",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("entity", sa.Text, nullable=False),
        sa.Column("timestamp", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.Text),
    )
    op.create_table(
        "feature_versions",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Text),
        sa.Column("stage", sa.Text),
        sa.Column("var", sa.Text),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("bytes", sa.Integer),
        sa.Column("columns", sa.Text, nullable=False, server_default="[]"),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("entities", sa.Integer),
        sa.Column("min_ts", sa.Text),
        sa.Column("max_ts", sa.Text),
        sa.Column("breaking", sa.Integer, nullable=False, server_default="0"),
        sa.Column("message", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.Text),
        sa.PrimaryKeyConstraint("name", "version"),
    )
    op.create_table(
        "feature_online",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("online", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("materialized_at", sa.Float, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("max_ts", sa.Text),
        sa.PrimaryKeyConstraint("name", "online"),
    )
