"""Deployments and endpoints of the local target: start, smoke-test, activate, replace, delete.

An endpoint is a name (e.g. `dev`) with at most one *active* deployment. A new deployment starts
beside the active one; only after it is healthy and its smoke test passed does it become active
and the old one is stopped. A failed smoke test marks the new one failed and leaves the old one
serving.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from shipyard.config.models import DeploymentConfig
from shipyard.deploy.keys import delete_keys, ensure_keys, keys_file, temporary_key
from shipyard.deploy.local import process_alive, start_server, stop_server, wait_healthy
from shipyard.deploy.smoke import smoke_test
from shipyard.errors import DeploymentError, NotFoundError
from shipyard.packaging.bundle import Bundle
from shipyard.store import utcnow
from shipyard.store.models import DeploymentRow
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


def _settings_path(ws: Workspace, endpoint: str, deployment_id: str) -> Path:
    return ws.subdir("deployments", endpoint) / f"{deployment_id}.settings.json"


def _server_args(ws: Workspace, config: DeploymentConfig, dep_id: str) -> tuple[list[str], dict | None]:
    """The server's settings file (auth on by default for deployments), keys and capture folder;
    plus the endpoint's plain keys when this call created them."""
    serving = config.serving.model_copy(deep=True)
    if serving.auth is None:
        serving.auth = True
    path = _settings_path(ws, config.name, dep_id)
    path.write_text(json.dumps(serving.model_dump(), indent=2))
    args, created = ["--settings", str(path)], None
    if serving.auth:
        created = ensure_keys(ws, config.name)
        args += ["--keys-file", str(keys_file(ws, config.name))]
    if serving.capture.enabled:
        args += ["--capture-dir", str(ws.subdir("capture", config.name))]
    return args, created


def auth_enabled(ws: Workspace, dep: DeploymentInfo) -> bool:
    path = _settings_path(ws, dep.endpoint, dep.id)
    return bool(path.is_file() and json.loads(path.read_text()).get("auth"))


def start_deployment(ws: Workspace, bundle: Bundle, config: DeploymentConfig) -> DeploymentInfo:
    """Start the bundle's server beside any active deployment and wait until it is healthy."""
    dep_id = uuid.uuid4().hex
    log_path = ws.subdir("deployments", config.name) / f"{dep_id}.log"
    now = utcnow()
    with ws.store.session() as s:
        s.add(
            DeploymentRow(
                id=dep_id,
                endpoint=config.name,
                target="local",
                model_name=bundle.model_name,
                model_version=bundle.model_version,
                bundle_id=bundle.id,
                host=config.host,
                state="starting",
                log_path=str(log_path),
                smoke_detail={},
                created_at=now,
                updated_at=now,
            )
        )
    port = config.port
    current = active_deployment(ws, config.name)
    if port and current and current.port == port:
        # A fixed port cannot be shared: the old server must go first (brief gap, documented).
        if current.pid:
            stop_server(current.pid)
        _update(ws, current.id, state="replaced", message="stopped to free its fixed port")
    args, created_keys = _server_args(ws, config, dep_id)
    try:
        proc = start_server(
            Path(bundle.path),
            host=config.host,
            port=port,
            log_path=log_path,
            deployment_id=dep_id,
            extra_args=args,
        )
        _update(ws, dep_id, pid=proc.pid, port=proc.port, url=proc.url)
        wait_healthy(proc.url, config.health_timeout_s, expected_deployment_id=dep_id)
    except DeploymentError as exc:
        info = get_deployment(ws, dep_id)
        if info.pid:
            stop_server(info.pid)
        _update(ws, dep_id, state="failed", message=str(exc))
        raise
    info = _update(ws, dep_id, state="healthy")
    info.new_keys = created_keys
    return info


def run_smoke_test(
    ws: Workspace, deployment_id: str, payload: dict | None, timeout_s: float
) -> DeploymentInfo:
    """Smoke-test a started deployment; on success make it active and stop the one it replaces.

    On failure the new deployment is stopped and marked failed; the previous one keeps serving.
    """
    dep = get_deployment(ws, deployment_id)
    if not payload:
        if dep.pid:
            stop_server(dep.pid)
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
        if dep.pid:
            stop_server(dep.pid)
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
    previous = active_deployment(ws, dep.endpoint)
    info = _update(ws, dep.id, state="active", smoke_passed=True, smoke_detail=result.to_dict())
    if previous and previous.id != dep.id:
        if previous.pid:
            stop_server(previous.pid)
        _update(ws, previous.id, state="replaced", message=f"replaced by {dep.id}")
    return info


def get_deployment(ws: Workspace, deployment_id: str) -> DeploymentInfo:
    with ws.store.session() as s:
        row = s.get(DeploymentRow, deployment_id)
        if row is None:
            raise NotFoundError(f"no deployment {deployment_id!r}")
        return _info(row)


def active_deployment(ws: Workspace, endpoint: str) -> DeploymentInfo | None:
    """The endpoint's active deployment, if its process is still alive."""
    with ws.store.session() as s:
        row = s.scalars(
            select(DeploymentRow)
            .where(DeploymentRow.endpoint == endpoint, DeploymentRow.state == "active")
            .order_by(DeploymentRow.created_at.desc())
            .limit(1)
        ).first()
        info = _info(row) if row else None
    if info and not (info.pid and process_alive(info.pid)):
        _update(ws, info.id, state="failed", message="process is no longer running")
        return None
    return info


def list_endpoints(ws: Workspace) -> list[dict[str, Any]]:
    """One entry per endpoint name with its active deployment (if any) and live state."""
    with ws.store.session() as s:
        names = sorted(set(s.scalars(select(DeploymentRow.endpoint))))
    out = []
    for name in names:
        dep = active_deployment(ws, name)
        out.append(
            {
                "endpoint": name,
                "url": dep.url if dep else None,
                "state": "serving" if dep else "down",
                "model": f"{dep.model_name}:{dep.model_version}" if dep else None,
                "deployment_id": dep.id if dep else None,
                "pid": dep.pid if dep else None,
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
        live = [(r.id, r.pid) for r in rows if r.state in (*LIVE_STATES, "starting")]
    for dep_id, pid in live:
        if pid:
            stop_server(pid)
        _update(ws, dep_id, state="deleted", message="endpoint deleted")
    delete_keys(ws, endpoint)
    return [dep_id for dep_id, _ in live]


def deployment_is_serving(ws: Workspace, deployment_id: str) -> bool:
    """For the pipeline cache: is this deployment still active with a live process?"""
    try:
        dep = get_deployment(ws, deployment_id)
    except NotFoundError:
        return False
    active = active_deployment(ws, dep.endpoint)
    return active is not None and active.id == deployment_id
