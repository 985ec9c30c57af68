"""Crash consistency: a pipeline run records the process that runs it (host, pid, start time) and
a deployment the process that started it, so that the next run or `shipyard doctor` can tell an
interrupted one (its process is dead) from one still in progress.

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shipyard_pipeline_runs") as batch:
        batch.add_column(sa.Column("runner_host", sa.String(200), nullable=True))
        batch.add_column(sa.Column("runner_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("runner_start", sa.String(80), nullable=True))
    with op.batch_alter_table("shipyard_deployments") as batch:
        batch.add_column(sa.Column("starter_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("starter_start", sa.String(80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shipyard_deployments") as batch:
        batch.drop_column("starter_start")
        batch.drop_column("starter_pid")
    with op.batch_alter_table("shipyard_pipeline_runs") as batch:
        batch.drop_column("runner_start")
        batch.drop_column("runner_pid")
        batch.drop_column("runner_host")
