"""Initial tables: pipeline runs, step runs, gate decisions, alias events, bundles, deployments.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "shipyard_pipeline_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        _ts("started_at"),
        _ts("finished_at", True),
        sa.Column("parameters", sa.JSON()),
        sa.Column("mlflow_run_id", sa.String(64)),
        sa.Column("error", sa.Text()),
        sa.Column("summary", sa.JSON()),
    )
    op.create_table(
        "shipyard_step_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("pipeline_run_id", sa.String(32), nullable=False, index=True),
        sa.Column("step", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("cache_key", sa.String(64), index=True),
        _ts("started_at", True),
        _ts("finished_at", True),
        sa.Column("duration_s", sa.Float()),
        sa.Column("outputs", sa.JSON()),
        sa.Column("message", sa.Text()),
        sa.Column("log_path", sa.String(500)),
    )
    op.create_table(
        "shipyard_gate_decisions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("pipeline_run_id", sa.String(32), index=True),
        sa.Column("model_name", sa.String(200), nullable=False, index=True),
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("direction", sa.String(10), nullable=False),
        sa.Column("candidate_run_id", sa.String(64), nullable=False),
        sa.Column("candidate_value", sa.Float()),
        sa.Column("champion_version", sa.String(20)),
        sa.Column("champion_run_id", sa.String(64)),
        sa.Column("champion_value", sa.Float()),
        sa.Column("verdict", sa.String(10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("policy", sa.JSON()),
        _ts("created_at"),
    )
    op.create_table(
        "shipyard_alias_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(200), nullable=False, index=True),
        sa.Column("alias", sa.String(100), nullable=False),
        sa.Column("from_version", sa.String(20)),
        sa.Column("to_version", sa.String(20)),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("pipeline_run_id", sa.String(32)),
        _ts("created_at"),
    )
    op.create_table(
        "shipyard_bundles",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model_name", sa.String(200), nullable=False, index=True),
        sa.Column("model_version", sa.String(20), nullable=False),
        sa.Column("uri", sa.String(1000), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("manifest", sa.JSON()),
        _ts("created_at"),
    )
    op.create_table(
        "shipyard_deployments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("endpoint", sa.String(100), nullable=False, index=True),
        sa.Column("target", sa.String(40), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(20), nullable=False),
        sa.Column("bundle_id", sa.String(32), nullable=False),
        sa.Column("url", sa.String(500)),
        sa.Column("host", sa.String(200)),
        sa.Column("port", sa.Integer()),
        sa.Column("pid", sa.Integer()),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("smoke_passed", sa.Boolean()),
        sa.Column("smoke_detail", sa.JSON()),
        sa.Column("log_path", sa.String(1000)),
        sa.Column("message", sa.Text()),
        _ts("created_at"),
        _ts("updated_at"),
    )


def downgrade() -> None:
    for table in (
        "shipyard_deployments",
        "shipyard_bundles",
        "shipyard_alias_events",
        "shipyard_gate_decisions",
        "shipyard_step_runs",
        "shipyard_pipeline_runs",
    ):
        op.drop_table(table)
