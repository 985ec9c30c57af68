"""Deployments restart as they were started: the deployment settings they ran with.

A rollback starts the previous deployment again when it is gone. It used to rebuild the settings
from the record's few columns (target, host), which lost everything else — a remote container's
host, the image builder, the restart policy, resources, the serving settings — and could not
restart a remote container at all. The record now keeps the effective `deployment:` settings it
started with (after the environment overlay). They hold references only (`env:`, `file:`, ...),
as shipyard.yaml does, never a secret.

Revision ID: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shipyard_deployments") as batch:
        batch.add_column(sa.Column("config", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shipyard_deployments") as batch:
        batch.drop_column("config")
