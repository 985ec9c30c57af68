"""The TTL reaper with real server processes: expired deployments and endpoints are stopped and
marked deleted, a dry run changes nothing, a second reap finds nothing, unexpired ones keep serving."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from bundles import make_bundle
from deploy_support import cleaned_ws, ensure_base_image, port_refuses
from tools import require_tool
from typer.testing import CliRunner, Result

from shipyard.cli.reap import reap_command
from shipyard.config.models import DeploymentConfig
from shipyard.deploy.endpoints import delete_endpoint, get_deployment, list_endpoints, start_deployment
from shipyard.deploy.keys import keys_file
from shipyard.deploy.reaper import reap
from shipyard.packaging.bundle import Bundle
from shipyard.store import utcnow
from shipyard.store.models import ComputeRow, DeploymentRow, EndpointRow
from shipyard.workspace import Workspace

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(tmp_path: Path):
    with cleaned_ws(tmp_path / "ws") as workspace:
        yield workspace


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    path, _ = make_bundle(tmp_path / "bundle")
    manifest = json.loads((path / "manifest.json").read_text())
    return Bundle("b" * 32, "diabetes-ridge", "3", str(path), "c" * 64, manifest)


def _expire(ws: Workspace, *, deployment: str | None = None, endpoint: str | None = None) -> None:
    past = utcnow() - timedelta(seconds=5)
    with ws.store.session() as s:
        if deployment:
            s.get(DeploymentRow, deployment).expires_at = past
        if endpoint:
            now = utcnow()
            s.add(
                EndpointRow(
                    name=endpoint, traffic={}, mirror={}, expires_at=past, created_at=now, updated_at=now
                )
            )


def test_reap_stops_expired_deployment_keeps_others(ws: Workspace, bundle: Bundle) -> None:
    doomed = start_deployment(ws, bundle, DeploymentConfig(name="scratch", ttl="1s"))
    keeper = start_deployment(ws, bundle, DeploymentConfig(name="keeper", ttl="24h"))
    assert not port_refuses(doomed.port) and not port_refuses(keeper.port)
    _expire(ws, deployment=doomed.id)
    with ws.store.session() as s:  # the keeper expires tomorrow
        s.get(DeploymentRow, keeper.id).expires_at = utcnow() + timedelta(hours=24)

    planned = reap(ws, dry_run=True)
    assert [(r["kind"], r["id"], r["status"]) for r in planned] == [("deployment", doomed.id, "would delete")]
    assert not port_refuses(doomed.port) and get_deployment(ws, doomed.id).state == "healthy"

    reaped = reap(ws)
    assert [(r["id"], r["status"], r["endpoint"]) for r in reaped] == [(doomed.id, "deleted", "scratch")]
    assert "ttl expired" in reaped[0]["reason"]
    assert reaped[0]["actions"] == [f"stopped process {doomed.pid}", "marked deleted"]
    assert port_refuses(doomed.port)
    dep = get_deployment(ws, doomed.id)
    assert dep.state == "deleted" and dep.message.startswith("reaped: ttl expired")
    assert not port_refuses(keeper.port) and get_deployment(ws, keeper.id).state == "healthy"

    assert reap(ws) == []  # idempotent


def test_expired_endpoint_deletes_its_deployments_and_keys(ws: Workspace, bundle: Bundle) -> None:
    dep = start_deployment(ws, bundle, DeploymentConfig(name="preview"))
    assert keys_file(ws, "preview").is_file()
    _expire(ws, endpoint="preview")

    reaped = reap(ws)
    assert [(r["kind"], r["id"], r["status"]) for r in reaped] == [
        ("endpoint", "preview", "deleted"),
        ("deployment", dep.id, "deleted"),
    ]
    assert "forgot keys" in reaped[0]["actions"]
    assert reaped[0]["actions"][-1].startswith("removed endpoint record")
    assert port_refuses(dep.port)
    assert get_deployment(ws, dep.id).state == "deleted"
    assert not keys_file(ws, "preview").exists()
    with ws.store.session() as s:
        assert s.get(EndpointRow, "preview") is None
    assert list_endpoints(ws) == []  # what reap says it deleted, the list no longer shows
    assert reap(ws) == []


def _failed_deployment(ws: Workspace, dep_id: str) -> None:
    """A deployment of endpoint `broken` whose smoke test failed (no server)."""
    now = utcnow()
    with ws.store.session() as s:
        s.add(
            DeploymentRow(
                id=dep_id, endpoint="broken", target="local", model_name="m", model_version="1",
                bundle_id="b" * 32, state="failed", message="smoke test failed", smoke_detail={},
                created_at=now, updated_at=now,
            )
        )  # fmt: skip


def test_reaped_endpoint_with_a_failed_deployment_is_gone_from_the_list(ws: Workspace) -> None:
    """An endpoint whose only deployment had failed: reap says it deleted the endpoint, and
    `endpoints list` agrees; the failed record stays, with why it had failed."""
    _failed_deployment(ws, "f" * 32)
    _expire(ws, endpoint="broken")
    assert [(e["endpoint"], e["state"]) for e in list_endpoints(ws)] == [("broken", "down")]

    reaped = reap(ws)
    assert [(r["kind"], r["id"], r["status"]) for r in reaped] == [("endpoint", "broken", "deleted")]
    assert list_endpoints(ws) == []
    record = get_deployment(ws, "f" * 32)
    assert record.state == "deleted" and "was failed: smoke test failed" in record.message
    assert reap(ws) == []


def test_deleting_an_endpoint_whose_deployments_failed_removes_it_from_the_list(ws: Workspace) -> None:
    _failed_deployment(ws, "e" * 32)
    assert [e["endpoint"] for e in list_endpoints(ws)] == ["broken"]
    assert delete_endpoint(ws, "broken") == []  # nothing was running
    assert list_endpoints(ws) == []
    assert "was failed: smoke test failed" in get_deployment(ws, "e" * 32).message


def test_expired_container_deployment_is_removed(ws: Workspace) -> None:
    """The reaper removes a container deployment's container through the container target."""
    podman = require_tool("podman", "podman")
    image = ensure_base_image()  # any image does: the container is created, never started
    name = f"shipyard-reaptest-{uuid.uuid4().hex[:8]}"
    subprocess.run([podman, "create", "--name", name, image], capture_output=True, check=True)
    exists = lambda: subprocess.run([podman, "container", "exists", name]).returncode == 0  # noqa: E731
    try:
        assert exists()
        now = utcnow()
        with ws.store.session() as s:
            s.add(
                DeploymentRow(
                    id="d" * 32, endpoint="boxed", target="container", model_name="m", model_version="1",
                    bundle_id="b" * 32, state="active", smoke_detail={}, container_id=name,
                    expires_at=now - timedelta(seconds=1), created_at=now, updated_at=now,
                )
            )  # fmt: skip
        reaped = reap(ws)
        assert [(r["id"], r["status"], r["target"]) for r in reaped] == [("d" * 32, "deleted", "container")]
        assert reaped[0]["actions"] == [f"removed container {name}", "marked deleted"]
        assert not exists()
        assert get_deployment(ws, "d" * 32).state == "deleted"
    finally:
        subprocess.run([podman, "rm", "--force", name], capture_output=True)


def _reap_cli(ws: Workspace, *args: str) -> Result:
    """`shipyard reap ARGS` on the workspace `ws`."""
    app = typer.Typer()
    app.command()(reap_command)
    return CliRunner().invoke(app, ["--workspace", str(ws.root), *args])


def test_reap_command_reports_dry_run_and_nothing_to_do(ws: Workspace, bundle: Bundle) -> None:
    dep = start_deployment(ws, bundle, DeploymentConfig(name="cli", ttl="1s"))
    _expire(ws, deployment=dep.id)
    dry = _reap_cli(ws, "--dry-run", "--output", "json")
    assert dry.exit_code == 0, dry.output
    assert [r["status"] for r in json.loads(dry.stdout)] == ["would delete"]
    assert not port_refuses(dep.port)
    done = _reap_cli(ws)
    assert done.exit_code == 0
    assert f"deleted: deployment {dep.id[:12]} of endpoint cli: ttl expired" in done.stdout
    assert port_refuses(dep.port)
    again = _reap_cli(ws)
    assert again.exit_code == 0 and "nothing has expired" in again.stdout


def test_reap_command_stops_idle_clusters_and_reports_them(ws: Workspace) -> None:
    """Stopping idle local clusters is compute's (clusters.stop_idle); the command reports them
    among its rows."""
    long_ago = utcnow() - timedelta(hours=1)
    row = ComputeRow(name="idle", type="ray", state="running", settings={}, runtime={}, idle_minutes=1)
    row.created_at = row.started_at = row.last_used_at = long_ago
    with ws.store.session() as s:
        s.add(row)
    dry = _reap_cli(ws, "--dry-run", "--output", "json")
    assert dry.exit_code == 0, dry.output
    assert [(r["kind"], r["id"], r["target"], r["status"]) for r in json.loads(dry.stdout)] == [
        ("compute", "idle", "ray", "would stop")
    ]
    with ws.store.session() as s:
        s.get(ComputeRow, "idle").state = "running"  # the dry run's status check found no head
    done = _reap_cli(ws)
    assert done.exit_code == 0, done.output
    assert "stopped: ray cluster idle: idle since" in done.stdout
