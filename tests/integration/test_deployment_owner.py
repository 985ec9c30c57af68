"""Deployments know their host: another machine (or a copied `.shipyard/` folder) lists them with
their owner named, never calls them dead, and cannot stop them; the owner can."""

from __future__ import annotations

import shutil

import pytest

from shipyard.deploy.ownership import Owner, host_id, process_start, same_process

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

    from shipyard.deploy.ownership import owned_here

    original, moved = tmp_path / "a" / ".shipyard", tmp_path / "b" / ".shipyard"
    original.mkdir(parents=True)
    moved.mkdir(parents=True)
    dep = SimpleNamespace(owner_host=host_id(), owner_root=str(original.resolve()))
    assert owned_here(original, dep) and not owned_here(moved, dep)  # a copy: the original exists
    original.rename(tmp_path / "gone")
    assert owned_here(moved, dep)  # moved: nobody else on this host can own it
    assert not owned_here(moved, SimpleNamespace(owner_host="elsewhere", owner_root=dep.owner_root))
