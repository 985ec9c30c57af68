"""Tables of Shipyard's own store: what MLflow has no notion of.

They live in the same database as MLflow's tables; names are prefixed `shipyard_` and the
Alembic version table is `shipyard_alembic_version`, so the two never collide.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class PipelineRun(Base):
    __tablename__ = "shipyard_pipeline_runs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(200))
    # running | succeeded | failed | rejected | killed (its runner died: pipeline/recovery.py)
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    parameters: Mapped[dict] = mapped_column(JSON, default=dict)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    summary: Mapped[dict] = mapped_column(JSON, default=dict)
    # Since 0007: the process running it (shipyard/ownership.py), to tell an interrupted run.
    runner_host: Mapped[str | None] = mapped_column(String(200), nullable=True)
    runner_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    runner_start: Mapped[str | None] = mapped_column(String(80), nullable=True)


class StepRun(Base):
    __tablename__ = "shipyard_step_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pipeline_run_id: Mapped[str] = mapped_column(String(32), index=True)
    step: Mapped[str] = mapped_column(String(40))
    # pending | running | cached | succeeded | failed | skipped
    status: Mapped[str] = mapped_column(String(20))
    cache_key: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    outputs: Mapped[dict] = mapped_column(JSON, default=dict)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    log_path: Mapped[str | None] = mapped_column(String(500), nullable=True)


class GateDecisionRow(Base):
    __tablename__ = "shipyard_gate_decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pipeline_run_id: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    metric: Mapped[str] = mapped_column(String(200))
    direction: Mapped[str] = mapped_column(String(10))
    candidate_run_id: Mapped[str] = mapped_column(String(64))
    candidate_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    champion_version: Mapped[str | None] = mapped_column(String(20), nullable=True)
    champion_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    champion_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    verdict: Mapped[str] = mapped_column(String(10))  # passed | rejected | skipped
    reason: Mapped[str] = mapped_column(Text)
    policy: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class AliasEvent(Base):
    __tablename__ = "shipyard_alias_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    alias: Mapped[str] = mapped_column(String(100))
    from_version: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_version: Mapped[str | None] = mapped_column(String(20), nullable=True)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    pipeline_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class BundleRow(Base):
    __tablename__ = "shipyard_bundles"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    model_version: Mapped[str] = mapped_column(String(20))
    uri: Mapped[str] = mapped_column(String(1000))
    content_hash: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # Since 0006: the tree hash of the folder in the artifact store (what a machine's cache checks
    # a download against); None for a bundle that lives in a file:// store's folder.
    stored_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class DeploymentRow(Base):
    __tablename__ = "shipyard_deployments"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(100), index=True)
    target: Mapped[str] = mapped_column(String(40), default="local")
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(20))
    bundle_id: Mapped[str] = mapped_column(String(32))
    url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    host: Mapped[str | None] = mapped_column(String(200), nullable=True)
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # starting | healthy | active | failed | replaced | deleted
    state: Mapped[str] = mapped_column(String(20))
    smoke_passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    smoke_detail: Mapped[dict] = mapped_column(JSON, default=dict)
    log_path: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    # Since 0003: the deployment's name within its endpoint (blue, green, ...), its image and
    # container (container target), and when the reaper deletes it (ttl).
    slot: Mapped[str | None] = mapped_column(String(40), nullable=True)
    image_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    container_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Since 0006: who runs it (shipyard/ownership.py): the host, the workspace root that started it
    # and, for a local process, its start time (a reused pid is not the same process).
    owner_host: Mapped[str | None] = mapped_column(String(200), nullable=True)
    owner_root: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    process_start: Mapped[str | None] = mapped_column(String(80), nullable=True)
    # Since 0007: the process that started it (a `starting` row whose starter died is stale).
    starter_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    starter_start: Mapped[str | None] = mapped_column(String(80), nullable=True)
    # Since 0008: how the target reaches it from any machine (remote-container: the SSH
    # connection and runtime; references only, never a secret).
    target_settings: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # Since 0009: the deployment settings it started with (references only), to start it again.
    config: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class ImageRow(Base):
    """An OCI image built from a bundle."""

    __tablename__ = "shipyard_images"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tag: Mapped[str] = mapped_column(String(500), index=True)
    digest: Mapped[str | None] = mapped_column(String(100), nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    builder: Mapped[str] = mapped_column(String(20))
    bundle_id: Mapped[str] = mapped_column(String(32), index=True)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(20))
    base_image: Mapped[str] = mapped_column(String(500))
    pushed_to: Mapped[str | None] = mapped_column(String(500), nullable=True)
    build_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class EndpointRow(Base):
    """A stable URL in front of named deployments, with traffic weights (summing to 100)."""

    __tablename__ = "shipyard_endpoints"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    traffic: Mapped[dict] = mapped_column(JSON, default=dict)
    mirror: Mapped[dict] = mapped_column(JSON, default=dict)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class EndpointKey(Base):
    """An endpoint's primary or secondary key, stored as its SHA-256 hash only."""

    __tablename__ = "shipyard_endpoint_keys"
    endpoint: Mapped[str] = mapped_column(String(100), primary_key=True)
    slot: Mapped[str] = mapped_column(String(20), primary_key=True)  # primary | secondary
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class ComputeRow(Base):
    """A named compute target whose lifecycle Shipyard manages (a Ray cluster)."""

    __tablename__ = "shipyard_compute"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))  # created | starting | running | stopped | failed
    address: Mapped[str | None] = mapped_column(String(500), nullable=True)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    runtime: Mapped[dict] = mapped_column(JSON, default=dict)
    idle_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class BatchJobRow(Base):
    """One `shipyard batch-score` run and its summary."""

    __tablename__ = "shipyard_batch_jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))  # running | succeeded | failed
    model_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(20), nullable=True)
    backend: Mapped[str] = mapped_column(String(20))
    compute: Mapped[str | None] = mapped_column(String(100), nullable=True)
    input: Mapped[str] = mapped_column(String(1000))
    output: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    rows: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    rows_scored: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    failed_batches: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    summary: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class PromotionRow(Base):
    """A request to move a model version into an environment, and its decision."""

    __tablename__ = "shipyard_promotions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(20))
    source_env: Mapped[str | None] = mapped_column(String(40), nullable=True)
    target_env: Mapped[str] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(20))  # pending | approved | rejected | deployed | failed
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    deployment_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class EnvEventRow(Base):
    """One change to what an environment serves (deploy, promote, rollback, failure)."""

    __tablename__ = "shipyard_env_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    env: Mapped[str] = mapped_column(String(40), index=True)
    action: Mapped[str] = mapped_column(String(20))
    model_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(20), nullable=True)
    deployment_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    promotion_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
