"""The run store's tables, as SQLAlchemy Core objects: one schema for SQLite and PostgreSQL.

This is the layout at the newest migration (``migrations/versions``): queries
are built from these objects, the migrations create and change the tables.
JSON columns are TEXT holding strict JSON (``nbops.text.to_json_text``), so
both backends store and return the same bytes; times are seconds since the
epoch (float).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, MetaData, PrimaryKeyConstraint, Table, Text

__all__ = [
    "metadata", "runs", "stages", "studies", "JSON_RUN", "JSON_STAGE", "HEAD",
    "models", "model_versions", "model_aliases", "alias_events", "serve_requests", "JSON_VERSION",
    "feature_tables", "feature_versions", "feature_online", "JSON_FEATURE",
    "schedules", "schedule_firings", "schedule_events", "schedulers", "JSON_SCHEDULE",
]  # fmt: skip

# The newest migration; a store at a revision this nbops does not know is newer and refused.
HEAD = "0007"

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
    Column("trigger", Text),
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

JSON_RUN = ("params", "env", "git", "error", "report", "trigger")
JSON_STAGE = ("outputs", "scalars", "metrics", "checks", "inputs", "artifacts", "error", "worker", "reason", "key_parts", "deps", "unusable")

# -- the model registry (revision 0005) ----------------------------------------
# A version points at a run's stage output (content hash) and copies what a
# reader needs without the run: flavor, signature, metrics, parameters. Alias
# moves are append-only events, so history and rollback never lose a step.
models = Table(
    "models",
    metadata,
    Column("name", Text, primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("created_by", Text),
    Column("description", Text),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("name", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("run_id", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("var", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("bytes", Integer),
    Column("file", Text, nullable=False),
    Column("serializer", Text, nullable=False),
    Column("flavor", Text, nullable=False),
    Column("signature", Text, nullable=False, server_default="{}"),
    Column("metrics", Text, nullable=False, server_default="{}"),
    Column("params", Text, nullable=False, server_default="{}"),
    Column("extra", Text, nullable=False, server_default="{}"),
    Column("source", Text, nullable=False),
    Column("message", Text),
    Column("created_at", Float, nullable=False),
    Column("created_by", Text),
    PrimaryKeyConstraint("name", "version"),
    Index("model_versions_run", "run_id"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", Text, nullable=False),
    Column("alias", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", Text),
    PrimaryKeyConstraint("name", "alias"),
)

alias_events = Table(
    "alias_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("alias", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("user", Text),
    Column("at", Float, nullable=False),
    Column("message", Text),
    Column("gates", Text, nullable=False, server_default="[]"),
    Index("alias_events_model", "name", "alias", "id"),
)

# Sampled requests of `nbops serve --log-requests`, for drift against the training data.
serve_requests = Table(
    "serve_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("payload", Text, nullable=False),
    Index("serve_requests_model", "name", "version", "at"),
)

JSON_VERSION = ("signature", "metrics", "params", "extra", "gates", "payload")

# -- the feature store (revision 0006) -----------------------------------------
feature_tables = Table(
    "feature_tables",
    metadata,
    Column("name", Text, primary_key=True),
    Column("entity", Text, nullable=False),
    Column("timestamp", Text, nullable=False),
    Column("description", Text),
    Column("created_at", Float, nullable=False),
    Column("created_by", Text),
)

feature_versions = Table(
    "feature_versions",
    metadata,
    Column("name", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("run_id", Text),
    Column("stage", Text),
    Column("var", Text),
    Column("sha256", Text, nullable=False),
    Column("bytes", Integer),
    Column("columns", Text, nullable=False, server_default="[]"),
    Column("rows", Integer, nullable=False),
    Column("entities", Integer),
    Column("min_ts", Text),
    Column("max_ts", Text),
    Column("breaking", Integer, nullable=False, server_default="0"),
    Column("message", Text),
    Column("created_at", Float, nullable=False),
    Column("created_by", Text),
    PrimaryKeyConstraint("name", "version"),
)

# One row per (table, online store): what was materialized there, and when.
feature_online = Table(
    "feature_online",
    metadata,
    Column("name", Text, nullable=False),
    Column("online", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("materialized_at", Float, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("max_ts", Text),
    PrimaryKeyConstraint("name", "online"),
)

JSON_FEATURE = ("columns",)

# -- automation (revision 0007) ------------------------------------------------
# A schedule: what to run (notebook, params, executor) and what starts it (trigger
# JSON: {"kind": "cron"|"every"|"on_change"|"after", ...}); ``state`` is the
# scheduler's memory of it (last hashes seen by a data trigger, last firing planned).
schedules = Table(
    "schedules",
    metadata,
    Column("name", Text, primary_key=True),
    Column("notebook", Text, nullable=False),
    Column("trigger", Text, nullable=False),
    Column("params", Text, nullable=False, server_default="{}"),
    Column("params_file", Text),
    Column("executor", Text, nullable=False, server_default="local"),
    Column("notify", Text, nullable=False, server_default="[]"),
    Column("notify_on", Text, nullable=False, server_default="[]"),
    Column("promote", Text),
    Column("options", Text, nullable=False, server_default="{}"),
    Column("paused", Integer, nullable=False, server_default="0"),
    Column("broken", Text),
    Column("state", Text, nullable=False, server_default="{}"),
    Column("created_at", Float, nullable=False),
    Column("created_by", Text),
    Column("updated_at", Float, nullable=False),
)

# One row per firing, keyed by what fired it ("cron:2026-12-01T03:00:00+01:00",
# "change:<hash>", "after:<run id>", "manual:<id>"): the primary key is what makes a
# firing run at most once however many schedulers see it; the lease says who runs it.
schedule_firings = Table(
    "schedule_firings",
    metadata,
    Column("name", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("due_at", Float, nullable=False),
    Column("trigger", Text, nullable=False, server_default="{}"),
    Column("status", Text, nullable=False),
    Column("run_id", Text),
    Column("owner", Text),
    Column("lease_until", Float),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("reason", Text),
    Column("outcome", Text, nullable=False, server_default="{}"),
    PrimaryKeyConstraint("name", "key"),
    Index("schedule_firings_due", "name", "due_at"),
    Index("schedule_firings_status", "status"),
)

# What happened around firings that is not a run: notifications sent or failed,
# promotions made or refused, warnings (a glob matching nothing), a schedule broken.
schedule_events = Table(
    "schedule_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("key", Text),
    Column("at", Float, nullable=False),
    Column("kind", Text, nullable=False),
    Column("target", Text),
    Column("status", Text, nullable=False),
    Column("message", Text),
    Column("detail", Text, nullable=False, server_default="{}"),
    Index("schedule_events_name", "name", "id"),
)

# Live scheduler processes (heartbeat), for `nbops scheduler status` and health.
schedulers = Table(
    "schedulers",
    metadata,
    Column("id", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("stopping", Integer, nullable=False, server_default="0"),
    Column("info", Text, nullable=False, server_default="{}"),
)

JSON_SCHEDULE = ("trigger", "params", "notify", "notify_on", "promote", "options", "state", "outcome", "detail", "info")
