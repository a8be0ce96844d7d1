"""Alembic's entry point: nbops passes the open connection in ``config.attributes``.

There is no alembic.ini: ``nbops store migrate`` and every store open run the
migrations through ``nbops.store.database.migrate``, under a lock.
"""

from alembic import context

connection = context.config.attributes["connection"]
# SQLite cannot ALTER most things in place: batch mode copies the table; both
# SQLite and PostgreSQL can run DDL inside a transaction, so a failed step leaves nothing half-done.
context.configure(connection=connection, render_as_batch=True, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
