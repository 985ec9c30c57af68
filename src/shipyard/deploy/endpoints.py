"""Deployments and endpoints: start, smoke-test, activate, replace, delete (local process or
container target: deploy/runtime.py).

An endpoint is a name (e.g. `dev`) with at most one *active* deployment. A new deployment starts
beside the active one in the other slot (blue/green); only after it is healthy and its smoke test
passed does it become active, the endpoint's router (deploy/traffic.py) sends it 100 % of the
traffic, and the old one is stopped once no router worker can still send to it. A failed smoke
test marks the new one failed and leaves the old one serving. Blue/green with traffic steps is
deploy/rollout.py.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from shipyard.config.models import DeploymentConfig
from shipyard.config.targets import ttl_seconds
from shipyard.crashpoint import pause_at
from shipyard.deploy import runtime
from shipyard.deploy.capture_sync import sync_after_delete
from shipyard.deploy.keys import delete_keys, temporary_key
from shipyard.deploy.smoke import SmokeResult, smoke_test
from shipyard.deploy.targets import target_class
from shipyard.deploy.traffic import EndpointInfo, check_slot, remove_endpoint, route_all_to
from shipyard.errors import DeploymentError, NotFoundError
from shipyard.ownership import Owner, owned_here
from shipyard.packaging.bundle import Bundle
from shipyard.processes import process_start
from shipyard.store import utcnow
from shipyard.store.models import DeploymentRow, EndpointRow
from shipyard.workspace import Workspace

LIVE_STATES = ("healthy", "active")


@dataclass
class DeploymentInfo:
    id: str
    endpoint: str
    model_name: str
    model_version: str
    bundle_id: str
    url: str | None
    pid: int | None
    port: int | None
    state: str
    smoke_passed: bool | None
    smoke_detail: dict[str, Any]
    log_path: str | None
    message: str | None
    created_at: str
    slot: str | None = None
    expires_at: str | None = None
    # The endpoint's stable URL (its router) once this deployment has traffic; `url` is direct.
    endpoint_url: str | None = None
    target: str = "local"
    container_id: str | None = None
    owner_host: str | None = None
    owner_root: str | None = None
    process_start: str | None = None
    image_id: str | None = None
    target_settings: dict[str, Any] | None = None
    config: dict[str, Any] | None = None  # the deployment settings it started with
    # Plain keys, only in the result of the call that created them: never stored or logged.
    new_keys: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "new_keys"}


def _info(row: DeploymentRow) -> DeploymentInfo:
    return DeploymentInfo(
        id=row.id,
        endpoint=row.endpoint,
        model_name=row.model_name,
        model_version=row.model_version,
        bundle_id=row.bundle_id,
        url=row.url,
        pid=row.pid,
        port=row.port,
        state=row.state,
        smoke_passed=row.smoke_passed,
        smoke_detail=row.smoke_detail or {},
        log_path=row.log_path,
        message=row.message,
        created_at=row.created_at.isoformat(timespec="seconds"),
        slot=row.slot,
        expires_at=row.expires_at.isoformat(timespec="seconds") if row.expires_at else None,
        target=row.target or "local",
        container_id=row.container_id,
        image_id=row.image_id,
        owner_host=row.owner_host,
        owner_root=row.owner_root,
        process_start=row.process_start,
        target_settings=row.target_settings,
        config=row.config,
    )


def _update(ws: Workspace, deployment_id: str, **fields: Any) -> DeploymentInfo:
    with ws.store.session() as s:
        row = s.get(DeploymentRow, deployment_id)
        if row is None:
            raise NotFoundError(f"no deployment {deployment_id!r}")
        for key, value in fields.items():
            setattr(row, key, value)
        row.updated_at = utcnow()
        s.flush()
        return _info(row)


def auth_enabled(ws: Workspace, dep: DeploymentInfo) -> bool:
    path = runtime.settings_path(ws, dep.endpoint, dep.id)
    return bool(path.is_file() and json.loads(path.read_text()).get("auth"))


def next_slot(ws: Workspace, endpoint: str, slot: str | None = None) -> str:
    """The slot for a new deployment: the one given, else the one the active deployment is not in."""
    if slot is not None:
        return check_slot(slot)
    current = active_deployment(ws, endpoint)
    return "green" if current is not None and current.slot == "blue" else "blue"


def spawn_recorder(ws: Workspace, deployment_id: str) -> Callable[[int], None]:
    """What `runtime.launch` calls with a new server's pid: commit it with the process's start
    time (shipyard/ownership.py) at once, before the server can outlive the process starting it."""

    def record(pid: int) -> None:
        _update(ws, deployment_id, pid=pid, **Owner.here(ws.root).fields(pid))
        pause_at("deploy:recorded")

    return record


def start_deployment(
    ws: Workspace,
    bundle: Bundle,
    config: DeploymentConfig,
    slot: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> DeploymentInfo:
    """Start the bundle's server beside any active deployment and wait until it is healthy.

    The `starting` record names its owner and the process starting it before anything is
    spawned, and the server's pid is committed the moment it exists: a starter killed at any
    point leaves a record that `endpoints delete` and `shipyard doctor` can act on."""
    dep_id = uuid.uuid4().hex
    log_path = ws.subdir("deployments", config.name) / f"{dep_id}.log"
    now = utcnow()
    slot = next_slot(ws, config.name, slot)
    expires = now + timedelta(seconds=ttl_seconds(config.ttl)) if config.ttl else None
    with ws.store.session() as s:
        s.add(
            DeploymentRow(
                id=dep_id,
                endpoint=config.name,
                target=config.target,
                model_name=bundle.model_name,
                model_version=bundle.model_version,
                bundle_id=bundle.id,
                host=config.host,
                state="starting",
                log_path=str(log_path),
                smoke_detail={},
                created_at=now,
                updated_at=now,
                slot=slot,
                expires_at=expires,
                starter_pid=os.getpid(),
                starter_start=process_start(os.getpid()),
                config=config.model_dump(mode="json", exclude_unset=True),
                **Owner.here(ws.root).fields(),
            )
        )
    current = active_deployment(ws, config.name)
    if config.port and current and current.port == config.port:
        # A fixed port cannot be shared: the old server must go first (brief gap, documented).
        runtime.stop(ws, current)
        _update(ws, current.id, state="replaced", message="stopped to free its fixed port")
    files, created_keys = runtime.write_server_files(ws, config, dep_id)
    try:
        fields = runtime.launch(
            ws,
            dep_id,
            bundle,
            config,
            files,
            log_path,
            slot=slot,
            on_spawn=spawn_recorder(ws, dep_id),
            progress=progress,
        )
    except Exception as exc:
        _update(ws, dep_id, state="failed", message=str(exc))
        raise
    _update(ws, dep_id, **fields)
    info = _update(ws, dep_id, state="healthy")
    info.new_keys = created_keys
    return info


def check_deployment(
    ws: Workspace, deployment_id: str, payload: dict | None, timeout_s: float
) -> SmokeResult:
    """Smoke-test a started deployment directly (not through the router). A failure stops it,
    marks it failed and raises DeploymentError; success is recorded on the deployment."""
    dep = get_deployment(ws, deployment_id)
    if not payload:
        runtime.stop(ws, dep)
        _update(ws, dep.id, state="failed", message="no smoke-test payload")
        raise DeploymentError(
            "deployment.input_sample is not set in shipyard.yaml: the smoke test needs a sample request "
            "(a JSON file such as sample_request.json)"
        )
    if dep.url is None:
        raise DeploymentError(f"deployment {deployment_id} has no URL (state {dep.state})")
    if auth_enabled(ws, dep):
        with temporary_key(ws, dep.endpoint) as key:
            result = smoke_test(dep.url, payload, timeout_s, key=key)
    else:
        result = smoke_test(dep.url, payload, timeout_s)
    if not result.passed:
        runtime.stop(ws, dep)
        _update(
            ws,
            dep.id,
            state="failed",
            smoke_passed=False,
            smoke_detail=result.to_dict(),
            message=f"smoke test failed: {result.detail}",
        )
        raise DeploymentError(
            f"smoke test of {dep.endpoint} deployment {dep.id[:8]} failed: {result.detail}; "
            "the previous deployment keeps serving"
        )
    _update(ws, dep.id, smoke_passed=True, smoke_detail=result.to_dict())
    return result


def activate(ws: Workspace, deployment_id: str, reason: str) -> DeploymentInfo:
    """Make a checked deployment the active one: 100 % of the endpoint's traffic to its slot
    (when nginx is there), then stop the deployment(s) it replaces."""
    dep = get_deployment(ws, deployment_id)
    previous = [d for d in live_deployments(ws, dep.endpoint) if d.id != dep.id and d.state == "active"]
    info = _update(ws, dep.id, state="active")
    host = dep.url.split("//", 1)[1].rsplit(":", 1)[0].strip("[]") if dep.url else "127.0.0.1"
    try:
        # A router here would die with this machine: a deployment that outlives it keeps its URL.
        here = target_class(dep.target).on_this_machine
        routed = route_all_to(ws, dep.endpoint, dep.slot or "blue", host, reason) if here else None
    except Exception:
        _update(ws, dep.id, state=dep.state)
        raise
    info.endpoint_url = routed.url if routed else None
    for old in previous:
        runtime.stop(ws, old)
        _update(ws, old.id, state="replaced", message=f"replaced by {dep.id}")
    return info


def run_smoke_test(
    ws: Workspace, deployment_id: str, payload: dict | None, timeout_s: float
) -> DeploymentInfo:
    """Smoke-test a started deployment; on success make it active and stop the one it replaces.

    On failure the new deployment is stopped and marked failed; the previous one keeps serving.
    """
    check_deployment(ws, deployment_id, payload, timeout_s)
    return activate(ws, deployment_id, reason=f"replace: deployment {deployment_id} passed its smoke test")


def live_deployments(ws: Workspace, endpoint: str) -> list[DeploymentInfo]:
    """The endpoint's healthy and active deployments, newest first."""
    with ws.store.session() as s:
        rows = s.scalars(
            select(DeploymentRow)
            .where(DeploymentRow.endpoint == endpoint, DeploymentRow.state.in_(LIVE_STATES))
            .order_by(DeploymentRow.created_at.desc())
        )
        return [_info(r) for r in rows]


def replaced_deployments(ws: Workspace, endpoint: str) -> list[DeploymentInfo]:
    """The endpoint's deployments that served and were replaced, the last replaced first."""
    with ws.store.session() as s:
        rows = s.scalars(
            select(DeploymentRow)
            .where(DeploymentRow.endpoint == endpoint, DeploymentRow.state == "replaced")
            .order_by(DeploymentRow.updated_at.desc())
        )
        return [_info(r) for r in rows]


def get_deployment(ws: Workspace, deployment_id: str) -> DeploymentInfo:
    with ws.store.session() as s:
        row = s.get(DeploymentRow, deployment_id)
        if row is None:
            raise NotFoundError(f"no deployment {deployment_id!r}")
        return _info(row)


def active_deployment(ws: Workspace, endpoint: str) -> DeploymentInfo | None:
    """The endpoint's active deployment, if its server is still running."""
    with ws.store.session() as s:
        row = s.scalars(
            select(DeploymentRow)
            .where(DeploymentRow.endpoint == endpoint, DeploymentRow.state == "active")
            .order_by(DeploymentRow.created_at.desc())
            .limit(1)
        ).first()
        info = _info(row) if row else None
    if info and not runtime.alive(ws, info):
        _update(ws, info.id, state="failed", message="its server is no longer running")
        return None
    return info


def stable_url(routed: EndpointInfo | None, dep: DeploymentInfo | None) -> str | None:
    """The URL clients use: the endpoint router's (`get_endpoint`) once it routes traffic, else
    the active deployment's own."""
    return routed.url if routed and routed.traffic else (dep.url if dep else None)


def list_endpoints(ws: Workspace) -> list[dict[str, Any]]:
    """One entry per endpoint name: its URL (the router's when it has one), active deployment,
    live slots and traffic weights. An endpoint whose deployments are all deleted and which has no
    route (`endpoints delete`, `reap`) is gone: its records stay, the list no longer shows it."""
    from shipyard.deploy.traffic import get_endpoint

    with ws.store.session() as s:
        kept = select(DeploymentRow.endpoint).where(DeploymentRow.state != "deleted")
        names = sorted(set(s.scalars(kept)) | set(s.scalars(select(EndpointRow.name))))
    out = []
    for name in names:
        dep = active_deployment(ws, name)
        routed = get_endpoint(ws, name)
        out.append(
            {
                "endpoint": name,
                "url": stable_url(routed, dep),
                "state": "serving" if dep else "down",
                "model": f"{dep.model_name}:{dep.model_version}" if dep else None,
                "deployment_id": dep.id if dep else None,
                "pid": dep.pid if dep else None,
                "host": dep.owner_host if dep else None,
                "owned_here": owned_here(ws.root, dep) if dep else None,
                "deployment_url": dep.url if dep else None,
                # A local process's interpreter: "shipyard" (Shipyard's own) or its environment folder.
                "environment": (dep.target_settings or {}).get("environment") if dep else None,
                "python": (dep.target_settings or {}).get("python") if dep else None,
                "slots": {k: v.deployment_id for k, v in routed.slots.items()} if routed else {},
                "traffic": routed.traffic if routed else {},
                "mirror": routed.mirror if routed else {},
            }
        )
    return out


def delete_endpoint(ws: Workspace, endpoint: str) -> list[str]:
    """Stop every live deployment of an endpoint, mark them deleted and forget its keys.
    Returns the stopped deployments' ids."""
    with ws.store.session() as s:
        rows = list(s.scalars(select(DeploymentRow).where(DeploymentRow.endpoint == endpoint)))
        if not rows:
            names = sorted(set(s.scalars(select(DeploymentRow.endpoint))))
            raise NotFoundError(f"no endpoint {endpoint!r}; endpoints: {', '.join(names) or 'none'}")
        live = [_info(r) for r in rows if r.state in (*LIVE_STATES, "starting")]
        # Failed deployments have no server, but their rows keep the endpoint in `endpoints list`.
        failed = [(r.id, r.message) for r in rows if r.state == "failed"]
    for dep in live:  # all or nothing: refuse before stopping any
        runtime.check_owned(ws, dep, "delete")
    for dep in live:
        runtime.stop(ws, dep)
        _update(ws, dep.id, state="deleted", message="endpoint deleted")
    for dep_id, message in failed:
        _update(
            ws, dep_id, state="deleted", message=f"endpoint deleted (was failed: {message or 'no message'})"
        )
    delete_keys(ws, endpoint)
    remove_endpoint(ws, endpoint)
    sync_after_delete(ws, endpoint)  # its servers are stopped: every capture file is complete
    return [dep.id for dep in live]


def deployment_is_serving(ws: Workspace, deployment_id: str) -> bool:
    """For the pipeline cache: is this deployment still active with a live process?"""
    try:
        dep = get_deployment(ws, deployment_id)
    except NotFoundError:
        return False
    active = active_deployment(ws, dep.endpoint)
    return active is not None and active.id == deployment_id
