"""The run store's tables, as SQLAlchemy Core objects: one schema for SQLite and PostgreSQL.

This is the layout at the newest migration (``migrations/versions``): queries
are built from these objects, the migrations create and change the tables.
JSON columns are TEXT holding strict JSON (``nbops.text.to_json_text``), so
both backends store and return the same bytes; times are seconds since the
epoch (float).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, MetaData, PrimaryKeyConstraint, Table, Text

__all__ = ["metadata", "runs", "stages", "studies", "JSON_RUN", "JSON_STAGE", "HEAD"]

# The newest migration; a store at a revision this nbops does not know is newer and refused.
HEAD = "0004"

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("notebook", Text),
    Column("pipeline_dir", Text),
    Column("pipeline_sha256", Text),
    Column("notebook_sha256", Text),
    Column("status", Text, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("params", Text, nullable=False, server_default="{}"),
    Column("env", Text, nullable=False, server_default="{}"),
    Column("git", Text),
    Column("executor", Text),
    Column("kind", Text, nullable=False, server_default="run"),
    Column("parent_id", Text),
    Column("study", Text),
    Column("trial", Integer),
    Column("host", Text),
    Column("pid", Integer),
    Column("pid_start", Text),
    Column("heartbeat", Float),
    Column("error", Text),
    Column("report", Text),
    Column("user", Text),
    Index("runs_started", "started_at"),
    Index("runs_study", "study"),
    Index("runs_status", "status"),
    Index("runs_user", "user", "started_at"),
)

stages = Table(
    "stages",
    metadata,
    Column("run_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("position", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("cache_key", Text),
    Column("cached_from", Text),
    Column("notebook_sha256", Text),
    Column("outputs", Text, nullable=False, server_default="{}"),
    Column("scalars", Text, nullable=False, server_default="{}"),
    Column("metrics", Text, nullable=False, server_default="[]"),
    Column("checks", Text, nullable=False, server_default="[]"),
    Column("inputs", Text, nullable=False, server_default="[]"),
    Column("artifacts", Text, nullable=False, server_default="[]"),
    Column("error", Text),
    Column("worker", Text, nullable=False, server_default="{}"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("reason", Text),
    Column("key_parts", Text, nullable=False, server_default="{}"),
    Column("deps", Text, nullable=False, server_default="[]"),
    Column("unusable", Text),
    PrimaryKeyConstraint("run_id", "name"),
    Index("stages_cache", "cache_key", "status"),
)

studies = Table(
    "studies",
    metadata,
    Column("name", Text, primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("spec", Text, nullable=False),
)

JSON_RUN = ("params", "env", "git", "error", "report")
JSON_STAGE = ("outputs", "scalars", "metrics", "checks", "inputs", "artifacts", "error", "worker", "reason", "key_parts", "deps", "unusable")
