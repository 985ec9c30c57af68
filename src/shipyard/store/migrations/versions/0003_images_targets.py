"""Images, deployment targets (slot name, container, expiry) and endpoint traffic.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shipyard_images",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tag", sa.String(500), nullable=False, index=True),
        sa.Column("digest", sa.String(100), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("builder", sa.String(20), nullable=False),
        sa.Column("bundle_id", sa.String(32), nullable=False, index=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(20), nullable=False),
        sa.Column("base_image", sa.String(500), nullable=False),
        sa.Column("pushed_to", sa.String(500), nullable=True),
        sa.Column("build_seconds", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    with op.batch_alter_table("shipyard_deployments") as batch:
        batch.add_column(sa.Column("slot", sa.String(40), nullable=True))
        batch.add_column(sa.Column("image_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("container_id", sa.String(100), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
    op.create_table(
        "shipyard_endpoints",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("url", sa.String(500), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("traffic", sa.JSON(), nullable=False),  # {"blue": 90, "green": 10}
        sa.Column("mirror", sa.JSON(), nullable=False),  # {"green": 5} or {}
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("shipyard_endpoints")
    with op.batch_alter_table("shipyard_deployments") as batch:
        for column in ("expires_at", "container_id", "image_id", "slot"):
            batch.drop_column(column)
    op.drop_table("shipyard_images")
