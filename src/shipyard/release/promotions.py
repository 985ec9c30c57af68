"""Promotion: move a model version one environment along its `promotes_from` chain.

`promote` refuses unless the version is what the source environment serves, deployed there and
smoke-tested (`--force` skips that and is recorded). An environment with `requires_approval`
gets a *pending* promotion: nothing is deployed until `approve` (who and when recorded) — or at
once when the caller passes `approve=True`, which is what a CI job does when it runs inside the
CI system's own protected environment (the approval happened there). `reject` closes a pending
one. Every decision is a row in `shipyard_promotions`; a deployment failure marks it failed, the
environment keeps what it served. Nothing is half-done: the checks run before anything changes.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from shipyard.config.models import ProjectConfig
from shipyard.config.overlay import check_env
from shipyard.deploy.targets import target_class
from shipyard.errors import NotFoundError, UsageError
from shipyard.release.environments import deploy_to_env, serving
from shipyard.release.notify import notify
from shipyard.store.db import utcnow
from shipyard.store.models import PromotionRow


@dataclass
class Promotion:
    id: str
    model_name: str
    model_version: str
    source_env: str | None
    target_env: str
    status: str
    forced: bool
    reason: str | None
    requested_by: str
    decided_by: str | None
    decided_at: str | None
    deployment_id: str | None
    message: str | None
    created_at: str
    url: str | None = None
    new_keys: dict[str, str] | None = None  # keys of an endpoint this promotion created (shown once)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _info(row: PromotionRow) -> Promotion:
    return Promotion(
        row.id,
        row.model_name,
        row.model_version,
        row.source_env,
        row.target_env,
        row.status,
        row.forced,
        row.reason,
        row.requested_by,
        row.decided_by,
        row.decided_at.isoformat(timespec="seconds") if row.decided_at else None,
        row.deployment_id,
        row.message,
        row.created_at.isoformat(timespec="seconds"),
    )


class PromotionRefused(UsageError):
    """The version has not passed the source environment (exit 2: nothing was changed)."""


def _source_check(ws: Any, config: ProjectConfig, source: str, model_name: str, version: str) -> None:
    state = serving(ws, config, source)
    # On a cluster the rollout wait is the check: every replica passed its readiness probe.
    checked = state.smoke_passed or (
        state.deployment_id is not None and target_class(state.target).runs_in_cluster
    )
    if state.model_name == model_name and state.model_version == version and checked:
        return
    now = (
        f"{source} serves {state.model_name} v{state.model_version}"
        if state.model_version
        else f"{source} serves nothing"
    )
    raise PromotionRefused(
        f"cannot promote {model_name} v{version}: it is not deployed and smoke-tested in {source} ({now}); "
        f"deploy it there first (shipyard env deploy {source} --version {version}, or promote it into "
        f"{source}), or pass --force to promote anyway (recorded)"
    )


def promote(
    ws: Any,
    config: ProjectConfig,
    to_env: str,
    *,
    model_name: str | None = None,
    version: str | None = None,
    force: bool = False,
    approve: bool = False,
    by: str | None = None,
    reason: str | None = None,
) -> Promotion:
    from shipyard.registry import resolve
    from shipyard.registry.models import actor

    check_env(config, to_env)
    model_name = model_name or config.registry.model_name
    env = config.environments[to_env]
    source = env.promotes_from
    if version is None:
        if source is None:
            raise UsageError(
                f"{to_env} promotes from no environment: give --version (or use shipyard env deploy)"
            )
        version = serving(ws, config, source).model_version
        if version is None:
            raise PromotionRefused(f"{source} serves nothing: nothing to promote to {to_env}")
    version = str(resolve(ws, f"{model_name}:{version}").version)  # the version must exist
    if source is not None and not force:
        _source_check(ws, config, source, model_name, version)
    who = actor()
    waits = env.requires_approval and not approve
    # Only a pending promotion can be decided; one that needs no decision is never pending, so a
    # concurrent `approve` cannot deploy it a second time.
    decided_by = (by or who) if env.requires_approval and approve else None
    row = PromotionRow(
        id=uuid.uuid4().hex[:12],
        model_name=model_name,
        model_version=version,
        source_env=source,
        target_env=to_env,
        status="pending" if waits else "approved",
        forced=force,
        reason=reason,
        requested_by=who,
        created_at=utcnow(),
        decided_by=decided_by,
        decided_at=utcnow() if decided_by else None,
    )
    with ws.store.session() as s:
        s.add(row)
        s.flush()
        promotion = _info(row)
    if waits:
        notify(
            config,
            "promotion",
            f"{model_name} v{version} waits for approval to {to_env} "
            f"(promotion {promotion.id}, requested by {who})",
            promotion.to_dict(),
        )
        return promotion
    return _deploy(ws, config, promotion.id, decided_by=decided_by)


def _claim(ws: Any, promotion_id: str, status: str, by: str) -> Promotion:
    """pending → `status`, atomically: of two concurrent deciders exactly one wins."""
    from sqlalchemy import update

    p = get_promotion(ws, promotion_id)
    with ws.store.session() as s:
        changed = s.execute(
            update(PromotionRow)
            .where(PromotionRow.id == promotion_id, PromotionRow.status == "pending")
            .values(status=status, decided_by=by, decided_at=utcnow())
        ).rowcount
    if changed != 1:
        _pending(ws, promotion_id)  # raises, naming the state and who decided
    return get_promotion(ws, p.id)


def _deploy(ws: Any, config: ProjectConfig, promotion_id: str, decided_by: str | None) -> Promotion:
    p = get_promotion(ws, promotion_id)
    why = p.reason or (f"promoted from {p.source_env}" if p.source_env else "promoted")
    if p.forced:
        why += " (forced: source check skipped)"
    try:
        result = deploy_to_env(
            ws,
            config,
            p.target_env,
            f"{p.model_name}:{p.model_version}",
            reason=why,
            promotion_id=p.id,
            actor=decided_by,
        )
    except Exception as exc:
        failed = _update(ws, promotion_id, status="failed", message=str(exc))
        notify(
            config,
            "failure",
            f"promotion of {p.model_name} v{p.model_version} to {p.target_env} failed: {exc}",
            failed.to_dict(),
        )
        raise
    done = _update(ws, promotion_id, status="deployed", deployment_id=result["deployment_id"])
    done.url, done.new_keys = result.get("url"), result.get("new_keys")
    notify(
        config,
        "promotion",
        f"{p.model_name} v{p.model_version} is live in {p.target_env}"
        + (f" (approved by {decided_by})" if decided_by else ""),
        done.to_dict(),
    )
    return done


def _pending(ws: Any, promotion_id: str) -> Promotion:
    p = get_promotion(ws, promotion_id)
    if p.status != "pending":
        by = f" by {p.decided_by}" if p.decided_by else ""
        when = f" at {p.decided_at}" if p.decided_at else ""
        raise UsageError(f"promotion {promotion_id} is already {p.status}{by}{when}: nothing to decide")
    return p


def approve(ws: Any, config: ProjectConfig, promotion_id: str, by: str | None = None) -> Promotion:
    """Approve a pending promotion and deploy it."""
    from shipyard.registry.models import actor

    check_env(config, _pending(ws, promotion_id).target_env)
    p = _claim(ws, promotion_id, "approved", by or actor())
    return _deploy(ws, config, p.id, decided_by=p.decided_by)


def reject(ws: Any, config: ProjectConfig, promotion_id: str, by: str | None = None) -> Promotion:
    from shipyard.registry.models import actor

    done = _claim(ws, promotion_id, "rejected", by or actor())
    notify(
        config,
        "promotion",
        f"promotion of {done.model_name} v{done.model_version} to {done.target_env} "
        f"was rejected by {done.decided_by}",
        done.to_dict(),
    )
    return done


def get_promotion(ws: Any, promotion_id: str) -> Promotion:
    with ws.store.session() as s:
        row = s.get(PromotionRow, promotion_id)
        if row is None:
            raise NotFoundError(f"no promotion {promotion_id!r} (see `shipyard env history ENV`)")
        return _info(row)


def _update(ws: Any, promotion_id: str, **fields: Any) -> Promotion:
    with ws.store.session() as s:
        row = s.get(PromotionRow, promotion_id)
        for key, value in fields.items():
            setattr(row, key, value)
        s.flush()
        return _info(row)
