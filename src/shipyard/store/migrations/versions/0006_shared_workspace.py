"""A shared workspace: deployments name their owner (the host, the workspace root and the
process's start time); bundles record the content hash of their stored folder (artifact store).

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shipyard_deployments") as batch:
        batch.add_column(sa.Column("owner_host", sa.String(200), nullable=True))
        batch.add_column(sa.Column("owner_root", sa.String(1000), nullable=True))
        batch.add_column(sa.Column("process_start", sa.String(80), nullable=True))
    with op.batch_alter_table("shipyard_bundles") as batch:
        batch.add_column(sa.Column("stored_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shipyard_bundles") as batch:
        batch.drop_column("stored_hash")
    with op.batch_alter_table("shipyard_deployments") as batch:
        batch.drop_column("process_start")
        batch.drop_column("owner_root")
        batch.drop_column("owner_host")
