"""Compute clusters (lifecycle state) and batch scoring jobs.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shipyard_compute",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("type", sa.String(20), nullable=False),
        # created | starting | running | stopped | failed
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("address", sa.String(500), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),  # non-secret settings as created
        sa.Column("runtime", sa.JSON(), nullable=False),  # pids, ports, temp dir of a local cluster
        sa.Column("idle_minutes", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "shipyard_batch_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),  # running | succeeded | failed
        sa.Column("model_name", sa.String(200), nullable=True),
        sa.Column("model_version", sa.String(20), nullable=True),
        sa.Column("backend", sa.String(20), nullable=False),
        sa.Column("compute", sa.String(100), nullable=True),
        sa.Column("input", sa.String(1000), nullable=False),
        sa.Column("output", sa.String(1000), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("rows_scored", sa.BigInteger(), nullable=True),
        sa.Column("failed_batches", sa.Integer(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("shipyard_batch_jobs")
    op.drop_table("shipyard_compute")
