"""Rollback of an environment or an endpoint, with the `production` alias kept in step.

The endpoint returns to the deployment it served before (deploy/rollout.py). When the rolled-back
endpoint is the one `production` stands for — the last environment of the chain (prod), or the
project's own endpoint in a project without environments — and the alias still points at the
version that stopped serving, the alias moves back with it, recorded in the alias history with
the rollback as its reason. Otherwise the next `shipyard run` would compare its candidate with a
model nothing serves, and redeploy it. An alias that already moved on (a newer version passed the
gate since) is left where it is: the result says so.
"""

from __future__ import annotations

from typing import Any

from shipyard.config.models import ProjectConfig
from shipyard.config.overlay import env_deployment, production_env
from shipyard.errors import DeploymentError
from shipyard.release.environments import record_event

PRODUCTION = "production"


def rollback_endpoint(
    ws: Any, config: ProjectConfig | None, name: str, only_version: str | None = None
) -> dict[str, Any]:
    """Roll back `name`: an environment of the project (recorded in its history) or an endpoint.

    With `only_version`, only when `name` serves that version now (what a release's rollback job
    asks: a deployment that never went live leaves the previous version serving, and that one
    must not be rolled back in turn); otherwise the result says so and nothing changes."""
    from shipyard.deploy.endpoints import active_deployment
    from shipyard.deploy.rollout import rollback

    if only_version is not None:
        endpoint = env_deployment(config, name).name if config and name in config.environments else name
        dep = active_deployment(ws, endpoint)
        serves = dep.model_version if dep is not None else None
        if str(serves) != str(only_version):
            what = f"v{serves}" if serves is not None else "nothing"
            return {
                "endpoint": endpoint,
                "rolled_back": False,
                "model_version": serves,
                "note": f"{name} serves {what}, not v{only_version}: nothing to roll back",
            }
    if config is not None and name in config.environments:
        return rollback_env(ws, config, name)
    result = rollback(ws, name) | {"rolled_back": True}
    own = config.deployment if config is not None and not config.environments else None
    if own is not None and own.name == name:
        result |= follow_production(ws, name, result)
    return result


def rollback_env(ws: Any, config: ProjectConfig, env: str) -> dict[str, Any]:
    """Return `env`'s endpoint to the deployment it served before, and record it."""
    from shipyard.deploy.rollout import rollback

    d = env_deployment(config, env)
    try:
        result = rollback(ws, d.name, d.health_timeout_s, d.smoke_test.timeout_s)
    except DeploymentError as exc:
        record_event(ws, env, "failed", reason=f"rollback: {exc}")
        raise
    name, _, version = result["model"].rpartition(":")
    record_event(
        ws,
        env,
        "rollback",
        model_name=name,
        version=version,
        deployment_id=result["deployment_id"],
        reason=f"rollback from deployment {result['from_deployment_id']}",
    )
    result |= {"env": env, "rolled_back": True}
    if env == production_env(config):
        result |= follow_production(ws, env, result)
    return result


def follow_production(ws: Any, where: str, result: dict[str, Any]) -> dict[str, Any]:
    """Move `production` from the version the rollback stopped serving to the one serving now.

    Returns `{"production": {...}}`: the alias move (`moved`), or why the alias stayed."""
    from shipyard.deploy.endpoints import get_deployment
    from shipyard.registry.aliases import AliasConflict, compare_and_set, current
    from shipyard.registry.models import actor

    name, _, to_version = result["model"].rpartition(":")
    from_id = result.get("from_deployment_id")
    from_version = get_deployment(ws, from_id).model_version if from_id else None
    now = current(ws, name, PRODUCTION)
    info = {"model": name, "alias": PRODUCTION, "from": now, "to": now, "moved": False}
    if now is None or now == to_version or now != from_version:
        where_now = f"v{now}" if now else "not set"
        return {"production": info | {"note": f"{name}@{PRODUCTION} is {where_now}: left as it is"}}
    reason = (
        f"rollback of {where}: v{from_version} stopped serving (deployment {from_id}), v{to_version} serves"
    )
    try:
        move = compare_and_set(ws, name, PRODUCTION, to_version, expected=now, reason=reason, actor=actor())
    except AliasConflict as exc:  # moved by someone else meanwhile: their decision stands
        return {"production": info | {"to": exc.current, "note": str(exc)}}
    return {"production": move.to_dict() | {"reason": reason}}
