"""Alembic environment for Shipyard's own tables (own version table, shared database)."""

from alembic import context

from shipyard.store.models import Base

VERSION_TABLE = "shipyard_alembic_version"

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite needs batch mode for ALTER
    include_name=lambda name, type_, parent: type_ != "table" or (name or "").startswith("shipyard_"),
)
with context.begin_transaction():
    context.run_migrations()
