"""The TTL reaper: delete deployments and endpoints whose time is up (deployment.ttl).

Dev deployments are cheap to start and easy to forget; a `ttl` (e.g. 24h) sets `expires_at` on
the deployment or endpoint, and `reap` (run by `shipyard reap`, a cron entry or the Kubernetes
CronJob) deletes what has expired: it stops the process or container, marks the deployment
deleted, and for an expired endpoint also forgets its keys (through deploy/endpoints.py, as
`shipyard endpoints delete` does). It runs under a workspace lock, so two reapers never delete the
same thing twice, and a second run finds nothing. Targets other than the local process are
imported lazily: a workspace without the container or Kubernetes target installed still reaps its
local deployments and says what it skipped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from shipyard.deploy import runtime
from shipyard.deploy.endpoints import LIVE_STATES, delete_endpoint
from shipyard.deploy.keys import delete_keys
from shipyard.deploy.targets import target_class
from shipyard.errors import NotFoundError, ShipyardError
from shipyard.ownership import describe, owned_here
from shipyard.store import utcnow
from shipyard.store.models import DeploymentRow, EndpointRow
from shipyard.workspace import Workspace

# Deployments in these states hold nothing to delete.
DONE_STATES = ("deleted", "failed")


@dataclass
class Reaped:
    """One thing the reaper deleted (or, in a dry run, would delete), or had to skip."""

    kind: str  # deployment | endpoint | compute
    id: str
    endpoint: str
    target: str
    expired_at: str
    status: str  # deleted | would delete | skipped | failed
    reason: str
    actions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Dep:
    id: str
    endpoint: str
    target: str
    state: str
    pid: int | None
    container_id: str | None
    expires_at: datetime | None
    url: str | None
    port: int | None
    owner_host: str | None = None
    owner_root: str | None = None
    process_start: str | None = None
    target_settings: dict[str, Any] | None = None  # how a remote target reaches it (handle_of)


def _snapshot(row: DeploymentRow) -> _Dep:
    return _Dep(
        row.id,
        row.endpoint,
        row.target or "local",
        row.state,
        row.pid,
        row.container_id,
        row.expires_at,
        row.url,
        row.port,
        row.owner_host,
        row.owner_root,
        row.process_start,
        row.target_settings,
    )


def _iso(when: datetime | None) -> str:
    return when.isoformat(timespec="seconds") + "Z" if when else ""


def _mark_deleted(ws: Workspace, dep_id: str, message: str) -> None:
    with ws.store.session() as s:
        row = s.get(DeploymentRow, dep_id)
        if row is not None:
            row.state, row.message, row.updated_at = "deleted", message, utcnow()


class _Skip(Exception):
    """This deployment cannot be deleted from here; say why and leave it recorded."""


def _stop(ws: Workspace, dep: _Dep) -> list[str]:
    """Stop what runs for a deployment (deploy/runtime.py knows each target); the actions taken."""
    if target_class(dep.target).runs_in_cluster:
        raise _Skip("Kubernetes deployments are reaped in the cluster (the CronJob the target renders)")
    if not owned_here(ws.root, dep):
        raise _Skip(f"it runs on {describe(dep)}: `shipyard reap` there deletes it")
    runtime.stop(ws, dep)
    if dep.container_id:
        return [f"removed container {dep.container_id}"]
    return [f"stopped process {dep.pid}"] if dep.pid else []


def _reap_deployment(ws: Workspace, dep: _Dep, reason: str, dry_run: bool) -> Reaped:
    item = Reaped("deployment", dep.id, dep.endpoint, dep.target, _iso(dep.expires_at), "deleted", reason)
    if dry_run:
        item.status = "would delete"
        return item
    try:
        item.actions = _stop(ws, dep)
    except _Skip as exc:
        item.status, item.reason = "skipped", f"{reason}; not deleted: {exc}"
        return item
    except (ShipyardError, OSError) as exc:
        item.status, item.reason = "failed", f"{reason}; stopping it failed: {exc}"
        return item
    _mark_deleted(ws, dep.id, f"reaped: {reason}")
    item.actions.append("marked deleted")
    return item


def _expired_deployments(ws: Workspace, now: datetime) -> list[_Dep]:
    with ws.store.session() as s:
        rows = s.scalars(
            select(DeploymentRow)
            .where(DeploymentRow.expires_at.is_not(None), DeploymentRow.expires_at < now)
            .where(DeploymentRow.state.not_in(DONE_STATES))
            .order_by(DeploymentRow.expires_at)
        )
        return [_snapshot(r) for r in rows]


def _expired_endpoints(ws: Workspace, now: datetime) -> list[tuple[str, datetime]]:
    with ws.store.session() as s:
        rows = s.scalars(
            select(EndpointRow)
            .where(EndpointRow.expires_at.is_not(None), EndpointRow.expires_at < now)
            .order_by(EndpointRow.expires_at)
        )
        return [(r.name, r.expires_at) for r in rows if r.expires_at is not None]


def _live_deployments(ws: Workspace, endpoint: str) -> list[_Dep]:
    with ws.store.session() as s:
        rows = s.scalars(
            select(DeploymentRow).where(
                DeploymentRow.endpoint == endpoint, DeploymentRow.state.in_((*LIVE_STATES, "starting"))
            )
        )
        return [_snapshot(r) for r in rows]


def _reap_endpoint(ws: Workspace, name: str, expired: datetime, dry_run: bool) -> list[Reaped]:
    """An expired endpoint: its live deployments, its keys, its record."""
    reason = f"endpoint {name} expired at {_iso(expired)}"
    deps = _live_deployments(ws, name)
    item = Reaped("endpoint", name, name, "", _iso(expired), "deleted", reason)
    if dry_run:
        item.status = "would delete"
        return [item, *(_reap_deployment(ws, d, reason, True) for d in deps)]
    # Containers first (delete_endpoint knows only local processes); a local one is left to it,
    # unless another host owns it (then it is skipped, and so is the endpoint).
    out = [
        _reap_deployment(ws, d, reason, False)
        for d in deps
        if d.target != "local" or not owned_here(ws.root, d)
    ]
    if any(r.status != "deleted" for r in out):
        item.status, item.reason = "skipped", f"{reason}; kept because a deployment could not be deleted"
        return [item, *out]
    try:
        stopped = delete_endpoint(ws, name)  # stops local processes, marks rows deleted, forgets keys
    except NotFoundError:  # no deployment rows at all: only keys to forget
        stopped = []
        delete_keys(ws, name)
    for dep in deps:
        if dep.target == "local" and dep.id in stopped:
            actions = [f"stopped process {dep.pid}"] if dep.pid else []
            out.append(
                Reaped(
                    "deployment",
                    dep.id,
                    name,
                    dep.target,
                    _iso(dep.expires_at),
                    "deleted",
                    reason,
                    [*actions, "marked deleted"],
                )
            )
    item.actions = [
        f"deleted {len(deps)} deployment(s)",
        "forgot keys",
        _remove_endpoint_record(ws, name, reason),
    ]
    return [item, *out]


def _retire_records(ws: Workspace, name: str, reason: str) -> None:
    """A deleted endpoint's remaining records (failed deployments) are marked deleted too, so that
    `endpoints list` no longer shows the endpoint the reaper says it deleted; their message keeps
    why they had failed."""
    with ws.store.session() as s:
        rows = s.scalars(
            select(DeploymentRow).where(DeploymentRow.endpoint == name, DeploymentRow.state != "deleted")
        )
        for row in rows:
            row.message = f"reaped: {reason} (was {row.state}: {row.message or 'no message'})"
            row.state, row.updated_at = "deleted", utcnow()


def _remove_endpoint_record(ws: Workspace, name: str, reason: str) -> str:
    """Drop the endpoint's record and its route (deploy/traffic.remove_endpoint when present), and
    retire its remaining deployment records."""
    _retire_records(ws, name, reason)
    try:
        from shipyard.deploy.traffic import remove_endpoint
    except ImportError:
        with ws.store.session() as s:
            row = s.get(EndpointRow, name)
            if row is not None:
                s.delete(row)
        return "removed endpoint record"
    remove_endpoint(ws, name)
    return "removed endpoint record and route"


def reap(ws: Workspace, now: datetime | None = None, dry_run: bool = False) -> list[dict[str, Any]]:
    """Delete expired deployments and endpoints (expires_at before `now`, naive UTC).

    Returns one entry per deployment or endpoint (kind, id, endpoint, status, reason, actions);
    `dry_run` changes nothing and reports `would delete`. Idempotent: a second call returns [].
    """
    now = now or utcnow()
    with ws.lock("reaper"):
        results: list[Reaped] = []
        for name, expired in _expired_endpoints(ws, now):
            results += _reap_endpoint(ws, name, expired, dry_run)
        done = {r.id for r in results if r.kind == "deployment"}
        for dep in _expired_deployments(ws, now):
            if dep.id not in done:
                reason = f"ttl expired at {_iso(dep.expires_at)} (state was {dep.state})"
                results.append(_reap_deployment(ws, dep, reason, dry_run))
        if not dry_run:
            results += _drop_empty_routes(ws, {r.endpoint for r in results if r.kind == "deployment"})
    return [r.to_dict() for r in results]


def _drop_empty_routes(ws: Workspace, endpoints: set[str]) -> list[Reaped]:
    """An endpoint whose last live deployment was reaped loses its route too (its router would
    only answer 502), and its keys; the deployments' records stay, marked deleted."""
    out = []
    for name in sorted(endpoints):
        if _live_deployments(ws, name):
            continue
        with ws.store.session() as s:
            routed = s.get(EndpointRow, name) is not None
        if routed:
            delete_keys(ws, name)
            reason = "its last live deployment was reaped"
            action = _remove_endpoint_record(ws, name, reason)
            out.append(Reaped("endpoint", name, name, "", "", "deleted", reason, ["forgot keys", action]))
    return out
