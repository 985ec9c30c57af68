"""Environments: promotions (with approvals) and each environment's history.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shipyard_promotions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(20), nullable=False),
        sa.Column("source_env", sa.String(40), nullable=True),
        sa.Column("target_env", sa.String(40), nullable=False, index=True),
        # pending | approved | rejected | deployed | failed
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("deployment_id", sa.String(32), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "shipyard_env_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("env", sa.String(40), nullable=False, index=True),
        sa.Column("action", sa.String(20), nullable=False),  # deploy | promote | rollback | failed
        sa.Column("model_name", sa.String(200), nullable=True),
        sa.Column("model_version", sa.String(20), nullable=True),
        sa.Column("deployment_id", sa.String(32), nullable=True),
        sa.Column("promotion_id", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("shipyard_env_events")
    op.drop_table("shipyard_promotions")
