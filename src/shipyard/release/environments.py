"""What each environment serves, and putting a model version there.

An environment's deployment is its overlay on the project's (config/overlay.py). Deploying is
`shipyard deploy`'s path (deploy/facade.py: start beside the old one → health → smoke test →
switch → stop the old one; Kubernetes: server-side apply and rollout wait), then appends the
change to the environment's history (`shipyard_env_events`), which is also where `env status`
reads who put the current version there and why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select

from shipyard.config.models import ProjectConfig
from shipyard.config.overlay import check_env, env_deployment, env_project
from shipyard.store.db import utcnow
from shipyard.store.models import EnvEventRow


def record_event(
    ws: Any,
    env: str,
    action: str,
    *,
    model_name: str | None = None,
    version: str | None = None,
    deployment_id: str | None = None,
    promotion_id: str | None = None,
    reason: str | None = None,
    actor: str | None = None,
) -> None:
    from shipyard.registry.models import actor as current_actor

    with ws.store.session() as s:
        s.add(
            EnvEventRow(
                env=env,
                action=action,
                model_name=model_name,
                model_version=version,
                deployment_id=deployment_id,
                promotion_id=promotion_id,
                actor=actor or current_actor(),
                reason=reason,
                created_at=utcnow(),
            )
        )


def deploy_to_env(
    ws: Any,
    config: ProjectConfig,
    env: str,
    model_ref: str,
    *,
    reason: str,
    promotion_id: str | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Deploy the model version `model_ref` (NAME:VERSION / NAME@ALIAS) to `env`; smoke-tested."""
    from shipyard.deploy.facade import deploy_bundle
    from shipyard.registry import resolve

    project = env_project(config, env)
    d = project.deployment
    assert d is not None
    model = resolve(ws, model_ref)
    event = {
        "model_name": model.name,
        "version": str(model.version),
        "promotion_id": promotion_id,
        "actor": actor,
    }
    try:
        # New endpoint keys come back once (shown by the caller), stored only as hashes.
        result = deploy_bundle(ws, project, model)
    except Exception as exc:
        record_event(ws, env, "failed", reason=f"{reason}: {exc}", **event)
        raise
    action = "deploy" if promotion_id is None else "promote"
    record_event(ws, env, action, deployment_id=result.deployment_id, reason=reason, **event)
    return {
        "env": env,
        "endpoint": d.name,
        "model_name": model.name,
        "model_version": str(model.version),
        "deployment_id": result.deployment_id,
        "url": result.url,
        **({"new_keys": result.new_keys} if result.new_keys else {}),
    }


@dataclass
class EnvState:
    env: str
    endpoint: str
    promotes_from: str | None
    requires_approval: bool
    model_name: str | None = None
    model_version: str | None = None
    deployment_id: str | None = None
    url: str | None = None
    smoke_passed: bool | None = None
    target: str | None = None
    since: str | None = None
    by: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def serving(ws: Any, config: ProjectConfig, env: str) -> EnvState:
    """What `env` serves now: its endpoint's active deployment (checked alive) and its last change."""
    from shipyard.deploy.endpoints import active_deployment, stable_url
    from shipyard.deploy.traffic import get_endpoint

    d = env_deployment(config, env)
    e = config.environments[env]
    state = EnvState(env, d.name, e.promotes_from, e.requires_approval)
    dep = active_deployment(ws, d.name)
    if dep is not None:
        state.model_name, state.model_version, state.deployment_id = dep.model_name, dep.model_version, dep.id
        state.url, state.smoke_passed = stable_url(get_endpoint(ws, d.name), dep), dep.smoke_passed
        state.target = dep.target
    last = next((h for h in env_history(ws, env) if h["action"] in ("deploy", "promote", "rollback")), None)
    if last is not None and dep is not None and last.get("model_version") == dep.model_version:
        state.since, state.by, state.reason = last["created_at"], last["actor"], last["reason"]
    return state


def env_status(ws: Any, config: ProjectConfig) -> list[EnvState]:
    check_env(config, next(iter(config.environments), ""))
    return [serving(ws, config, env) for env in config.environments]


def env_history(ws: Any, env: str) -> list[dict[str, Any]]:
    """Every change to `env`, newest first."""
    with ws.store.session() as s:
        rows = s.scalars(select(EnvEventRow).where(EnvEventRow.env == env).order_by(EnvEventRow.id.desc()))
        return [_event(r) for r in rows]


def _event(r: EnvEventRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "env": r.env,
        "action": r.action,
        "model_name": r.model_name,
        "model_version": r.model_version,
        "deployment_id": r.deployment_id,
        "promotion_id": r.promotion_id,
        "actor": r.actor,
        "reason": r.reason,
        "created_at": r.created_at.isoformat(timespec="seconds"),
    }
