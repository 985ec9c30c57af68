"""Endpoint keys (hashed).

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shipyard_endpoint_keys",
        sa.Column("endpoint", sa.String(100), primary_key=True),
        sa.Column("slot", sa.String(20), primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("shipyard_endpoint_keys")
