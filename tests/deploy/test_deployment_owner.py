"""Deployments know their host: another machine (or a copied `.shipyard/` folder) lists them with
their owner named, never calls them dead, and cannot stop them; the owner can."""

from __future__ import annotations

import shutil

import pytest

from shipyard.ownership import Owner, host_id, same_process
from shipyard.processes import process_start

pytestmark = pytest.mark.integration


@pytest.fixture
def deployed(tmp_path, copy_project, shipyard_proc, teardown_endpoints):
    proj = copy_project(tmp_path / "a")
    res = shipyard_proc("run", "--output", "json", cwd=proj)
    assert res.code == 0, res.err
    assert res.json()["status"] == "succeeded"
    yield proj, res.json()
    teardown_endpoints(proj / ".shipyard")


def _endpoint(shipyard_proc, proj, env=None) -> dict:
    res = shipyard_proc("endpoints", "list", "--output", "json", cwd=proj, env=env)
    assert res.code == 0, res.err
    (entry,) = res.json()
    return entry


def test_a_copied_workspace_never_adopts_the_original_server(deployed, tmp_path, shipyard_proc, pid_is_alive):
    proj, summary = deployed
    mine = _endpoint(shipyard_proc, proj)
    assert mine["state"] == "serving" and mine["owned_here"] is True and mine["host"] == host_id()
    pid = mine["pid"]

    copy = tmp_path / "b"
    shutil.copytree(proj, copy)  # the whole checkout, .shipyard/ included
    theirs = _endpoint(shipyard_proc, copy)
    # Listed with its owner, not called dead (which would mark it failed in the copy).
    assert theirs["state"] == "serving" and theirs["owned_here"] is False
    assert theirs["deployment_id"] == mine["deployment_id"]
    res = shipyard_proc("endpoints", "delete", "dev", cwd=copy)
    assert res.code != 0
    assert f"it runs on host {host_id()}, workspace {(proj / '.shipyard').resolve()}" in res.err
    assert "Traceback" not in res.err
    assert pid_is_alive(pid)  # the original still serves
    assert _endpoint(shipyard_proc, proj)["state"] == "serving"


def test_another_host_cannot_stop_it_but_the_owner_can(deployed, shipyard_proc, pid_is_alive, pid_gone):
    proj, _ = deployed
    pid = _endpoint(shipyard_proc, proj)["pid"]
    other = {"SHIPYARD_HOST_ID": "build-agent-7"}
    seen = _endpoint(shipyard_proc, proj, env=other)
    assert seen["owned_here"] is False and seen["host"] == host_id()
    res = shipyard_proc("endpoints", "delete", "dev", cwd=proj, env=other)
    assert res.code != 0 and f"runs on host {host_id()}" in res.err
    assert pid_is_alive(pid)
    res = shipyard_proc("endpoints", "delete", "dev", cwd=proj)
    assert res.code == 0, res.err
    assert pid_gone(pid)


def test_a_reused_pid_is_not_the_recorded_server():
    import os
    from types import SimpleNamespace

    me = os.getpid()
    started = process_start(me)
    assert started and started.count(":") == 1
    assert same_process(SimpleNamespace(pid=me, process_start=started))
    assert not same_process(SimpleNamespace(pid=me, process_start=started.split(":")[0] + ":1"))
    fields = Owner.here("/tmp/x").fields(me)
    assert fields == {"owner_host": host_id(), "owner_root": "/tmp/x", "process_start": started}


def test_a_moved_checkout_keeps_its_deployments(tmp_path):
    from types import SimpleNamespace

    from shipyard.ownership import owned_here

    original, moved = tmp_path / "a" / ".shipyard", tmp_path / "b" / ".shipyard"
    original.mkdir(parents=True)
    moved.mkdir(parents=True)
    dep = SimpleNamespace(owner_host=host_id(), owner_root=str(original.resolve()))
    assert owned_here(original, dep) and not owned_here(moved, dep)  # a copy: the original exists
    original.rename(tmp_path / "gone")
    assert owned_here(moved, dep)  # moved: nobody else on this host can own it
    assert not owned_here(moved, SimpleNamespace(owner_host="elsewhere", owner_root=dep.owner_root))


def test_a_cluster_started_elsewhere_is_left_alone(tmp_path):
    """A local Ray cluster recorded by another host: status trusts the record (no probe of a pid
    that is not ours), stop and connect are refused naming the host, and the idle stop skips it."""
    from datetime import timedelta

    from shipyard.compute import clusters
    from shipyard.config.models import WorkspaceSettings
    from shipyard.errors import ConfigError
    from shipyard.store import utcnow
    from shipyard.store.models import ComputeRow
    from shipyard.workspace import Workspace

    ws = Workspace.get_or_create(WorkspaceSettings(root=str(tmp_path / "ws")))
    long_ago = utcnow() - timedelta(hours=5)
    runtime = {
        "pid": 999_999,
        "owner_host": "trainer-3",
        "owner_root": "/srv/ws",
        "gcs_address": "127.0.0.1:1",
    }
    row = ComputeRow(name="gpu", type="ray", state="running", address="http://127.0.0.1:8265", settings={})
    row.runtime, row.idle_minutes = runtime, 1
    row.created_at = row.started_at = row.last_used_at = long_ago
    with ws.store.session() as s:
        s.add(row)
    info = clusters.status(ws, "gpu")
    assert info.state == "running" and "trainer-3" in info.message
    with pytest.raises(ConfigError, match="runs on host trainer-3, workspace /srv/ws: stop it there"):
        clusters.stop(ws, "gpu")
    with pytest.raises(ConfigError, match="runs on host trainer-3"):
        clusters.ray_connect_address(ws, "gpu")
    assert clusters.stop_idle(ws) == []
    assert clusters.status(ws, "gpu").state == "running"
    ws.store.dispose()


def test_the_endpoint_table_names_the_host(deployed, shipyard_proc):
    proj, _ = deployed
    here = shipyard_proc("endpoints", "list", cwd=proj, env={"COLUMNS": "250"})
    assert here.code == 0 and " here " in here.out
    there = shipyard_proc("endpoints", "list", cwd=proj, env={"COLUMNS": "250", "SHIPYARD_HOST_ID": "ci-7"})
    assert there.code == 0 and host_id() in there.out
