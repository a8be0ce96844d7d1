"""Stage records marked unusable for the cache ('nbops store verify --repair' keeps them as history).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("stages") as t:
        t.add_column(sa.Column("unusable", sa.Text))
