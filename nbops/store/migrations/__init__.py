"""Alembic migrations of the run store (SQLite and PostgreSQL alike); run by ``nbops.store.database.migrate``."""
