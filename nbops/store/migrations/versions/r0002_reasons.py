"""Why a stage ran, its cache-key parts and the files and packages it depended on.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("stages") as t:
        t.add_column(sa.Column("reason", sa.Text))
        t.add_column(sa.Column("key_parts", sa.Text, nullable=False, server_default="{}"))
        t.add_column(sa.Column("deps", sa.Text, nullable=False, server_default="[]"))
