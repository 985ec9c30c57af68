"""Deployments that outlive the machine that started them: how their target reaches them.

A remote-container deployment runs on a host reached over SSH; its record keeps that connection
(host, port, user, the key's *reference*, known_hosts, runtime) so that any machine with the SSH
credentials can check it, read its logs and delete it. Never a secret: references only.

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shipyard_deployments") as batch:
        batch.add_column(sa.Column("target_settings", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shipyard_deployments") as batch:
        batch.drop_column("target_settings")
