"""The remote-container target against the real OpenSSH server on loopback (tests/sshd_support.py):
the "remote" host is this machine through sshd, running podman as the ssh user. A real bundle is
deployed through the endpoint flow, scored through the host's published port with the key (200)
and without (401); a second version starts beside the first (which serves until the second is
healthy and smoke-tested); an unreachable host and a registry that refuses the push each fail in
one line while the active version keeps serving; another machine checks and deletes it."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from bundles import SEED
from deploy_support import BASE, bundle_at, config, ensure_base_image, make_ws
from oci_registry_support import oci_registry  # noqa: F401
from sshd_support import free_port, sshd  # noqa: F401

from shipyard.deploy import runtime
from shipyard.deploy.endpoints import (
    active_deployment,
    delete_endpoint,
    get_deployment,
    run_smoke_test,
    start_deployment,
)
from shipyard.deploy.reaper import reap
from shipyard.deploy.targets import get_target, handle_of
from shipyard.deploy.targets.remote_container import HostContainers, connection
from shipyard.errors import ShipyardError
from shipyard.store import utcnow
from shipyard.store.models import DeploymentRow

pytestmark = pytest.mark.integration


def _cfg(server, **remote):
    settings = {
        "host": "127.0.0.1",
        "port": server.port,
        "key": f"file:{server.client_key}",
        "known_hosts": str(server.known_hosts),
        "runtime": "podman",
    }
    return config(
        name="remote-ep",
        target="remote-container",
        image={"base": BASE, "builder": "podman"},
        restart="no",
        serving={"auth": True},
        remote=settings | remote,
    )


def _exists(container_id: str) -> bool:
    return subprocess.run(["podman", "container", "exists", container_id]).returncode == 0


def _score(url: str, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{url}/score", json=SEED, headers=headers, timeout=10)


def test_an_image_is_streamed_through_the_connection(sshd, tmp_path: Path) -> None:  # noqa: F811
    """`podman save | ssh host podman load` moves the bytes for real; the "remote" store is this
    machine's own here, so the loaded image is checked by its id, and a save that fails (no such
    image here) is reported rather than loading nothing."""
    ensure_base_image()
    settings = connection(_cfg(sshd).remote) | {"name": "stream-test"}
    host = HostContainers.of(settings)
    tag = f"localhost/shipyard-stream-test:{uuid.uuid4().hex[:8]}"
    subprocess.run(["podman", "tag", BASE, tag], check=True)
    try:
        host.stream_image(tag, "podman")
        local = subprocess.run(
            ["podman", "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True, text=True
        ).stdout.strip()
        assert local and host.image_id(tag) == local
    finally:
        subprocess.run(["podman", "rmi", tag], capture_output=True)
    with pytest.raises(ShipyardError, match=r"shipyard-stream-test:gone"):
        host.stream_image("localhost/shipyard-stream-test:gone", "podman")


def test_deploy_score_redeploy_failures_and_delete_from_another_machine(
    sshd,  # noqa: F811
    tmp_path: Path,
    monkeypatch,
) -> None:
    ensure_base_image()
    ws = make_ws(tmp_path / "ws")
    cfg = _cfg(sshd)
    started = start_deployment(ws, bundle_at(tmp_path / "b1", "1"), cfg)
    key = (started.new_keys or {})["primary"]
    first = run_smoke_test(ws, started.id, SEED, 60)
    try:
        assert first.state == "active" and first.target == "remote-container"
        assert first.url == f"http://127.0.0.1:{first.port}" and first.endpoint_url is None  # no router here
        assert first.owner_host is None  # not owned by the machine that deployed it
        settings = first.target_settings or {}
        assert settings["host"] == "127.0.0.1" and settings["port"] == sshd.port
        assert settings["key"] == f"file:{sshd.client_key}"  # the reference, not the key
        assert "PRIVATE KEY" not in str(settings)
        assert _exists(str(first.container_id))
        home = Path.home() / ".shipyard" / "deployments" / settings["name"]
        assert (home / "settings.json").is_file() and (home / "keys" / "keys.json").is_file()

        ok = _score(first.url, key)
        assert ok.status_code == 200, ok.text
        assert len(ok.json()["result"]) == len(SEED["data"])
        assert _score(first.url, None).status_code == 401
        assert _score(first.url, "wrong-key").status_code == 401

        # An unreachable host: one line naming host and port; the active version keeps serving.
        second = bundle_at(tmp_path / "b2", "2")
        closed = free_port()
        with pytest.raises(ShipyardError) as err:
            start_deployment(ws, second, _cfg(sshd, port=closed))
        message = str(err.value)
        assert f"cannot reach 127.0.0.1:{closed}" in message and "\n" not in message
        assert _score(first.url, key).status_code == 200
        # A registry that refuses the push: a clear error naming it; still serving.
        registry = f"127.0.0.1:{free_port()}/team"
        pushing = cfg.model_copy(update={"image": cfg.image.model_copy(update={"registry": registry})})
        with pytest.raises(ShipyardError) as err:
            start_deployment(ws, second, pushing)
        assert "push of shipyard/diabetes-ridge:2-" in str(err.value) and registry in str(err.value)
        assert active_deployment(ws, "remote-ep").id == first.id
        assert _score(first.url, key).status_code == 200

        # The second version starts beside the first, which serves until the second takes over.
        beside = start_deployment(ws, second, cfg)
        assert beside.state == "healthy" and beside.port != first.port
        assert _score(first.url, key).status_code == 200
        assert _score(beside.url, key).status_code == 200
        now = run_smoke_test(ws, beside.id, SEED, 60)
        assert now.state == "active" and now.model_version == "2"
        assert get_deployment(ws, first.id).state == "replaced"
        assert not _exists(str(first.container_id)) and not home.exists()  # container and folder gone
        served = httpx.get(f"{now.url}/", headers={"X-Shipyard-Deployment-Id": now.id}, timeout=10)
        assert served.json()["deployment_id"] == now.id

        # Another machine with the SSH credentials checks, reads the logs and deletes it.
        monkeypatch.setenv("SHIPYARD_HOST_ID", "another-machine")
        target = get_target("remote-container")
        assert target.status(handle_of(now)) == "running" and runtime.alive(ws, now)
        assert target.logs(handle_of(now)).strip()  # the server's own output, read over SSH
        assert delete_endpoint(ws, "remote-ep") == [now.id]
        assert not _exists(str(now.container_id))
        assert target.status(handle_of(now)) == "missing"
    finally:
        delete_endpoint(ws, "remote-ep")


def test_through_a_registry_the_host_pulls_and_keeps_no_credentials(
    sshd,  # noqa: F811
    oci_registry,  # noqa: F811
    tmp_path: Path,
    monkeypatch,
) -> None:
    """With image.registry the image is pushed here (the credentials from env: references) and
    pulled on the host, which logs in with a throw-away auth file: afterwards neither this machine
    nor the host has a login for the registry. A wrong password fails the push, naming the registry."""
    ensure_base_image()
    monkeypatch.setenv("TEST_REGISTRY_USER", oci_registry.username)
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", oci_registry.password)
    ws = make_ws(tmp_path / "ws")
    image = {
        "base": BASE,
        "builder": "podman",
        "registry": f"{oci_registry.address}/team",
        "registry_username": "env:TEST_REGISTRY_USER",
        "registry_password": "env:TEST_REGISTRY_PASSWORD",
    }
    cfg = _cfg(sshd).model_copy(update={"name": "pulled-ep", "image": _cfg(sshd).image.model_validate(image)})
    started = start_deployment(ws, bundle_at(tmp_path / "b1", "1"), cfg)
    try:
        dep = run_smoke_test(ws, started.id, SEED, 60)
        assert dep.state == "active"
        assert oci_registry.catalog() == ["team/diabetes-ridge"]
        ran = subprocess.run(
            ["podman", "container", "inspect", "--format", "{{.ImageName}}", str(dep.container_id)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        assert ran.startswith(f"{oci_registry.address}/team/diabetes-ridge:1-")
        assert _score(dep.url, (started.new_keys or {})["primary"]).status_code == 200
        login = subprocess.run(["podman", "login", "--get-login", oci_registry.address], capture_output=True)
        assert login.returncode != 0  # no credentials left behind, here or on the host (same store)
        assert oci_registry.password not in json.dumps(dep.to_dict())

        monkeypatch.setenv("TEST_REGISTRY_PASSWORD", "wrong")
        with pytest.raises(ShipyardError) as err:
            start_deployment(ws, bundle_at(tmp_path / "b2", "2"), cfg)
        assert oci_registry.address in str(err.value) and "wrong" not in str(err.value)
        assert active_deployment(ws, "pulled-ep").id == dep.id
    finally:
        delete_endpoint(ws, "pulled-ep")


def test_the_reaper_on_another_machine_deletes_an_expired_one(
    sshd,  # noqa: F811
    tmp_path: Path,
    monkeypatch,
) -> None:
    ensure_base_image()
    ws = make_ws(tmp_path / "ws")
    cfg = _cfg(sshd).model_copy(update={"ttl": "1h", "name": "remote-ttl"})
    dep = run_smoke_test(ws, start_deployment(ws, bundle_at(tmp_path / "b1", "1"), cfg).id, SEED, 60)
    try:
        folder = Path.home() / ".shipyard" / "deployments" / (dep.target_settings or {})["name"]
        assert _exists(str(dep.container_id)) and folder.is_dir()
        with ws.store.session() as s:
            s.get(DeploymentRow, dep.id).expires_at = utcnow() - timedelta(seconds=1)
        monkeypatch.setenv("SHIPYARD_HOST_ID", "the-ci-job-that-deployed-it-is-gone")
        reaped = reap(ws)
        assert [(r["id"], r["status"]) for r in reaped] == [(dep.id, "deleted")]
        assert f"removed container {dep.container_id}" in reaped[0]["actions"]
        assert not _exists(str(dep.container_id)) and not folder.exists()
    finally:
        delete_endpoint(ws, "remote-ttl")


def test_an_environment_on_a_remote_host_through_the_cli(
    sshd,  # noqa: F811
    tmp_path: Path,
    copy_project,
    shipyard_proc,
    teardown_endpoints,
    monkeypatch,
) -> None:
    """`shipyard run` deploys dev to the SSH host (the key from an env: reference), a rotated key
    reaches the host's copy, `shipyard deploy --target remote-container` replaces the version, an
    unreachable host is one line (dev keeps serving), `endpoints delete` removes the container."""
    ensure_base_image()
    project = copy_project(tmp_path / "project")
    data = yaml.safe_load((project / "shipyard.yaml").read_text())
    data["gate"] = {"enabled": False}
    data["deployment"]["image"] = {"base": BASE, "builder": "podman"}
    remote = {"host": "127.0.0.1", "port": sshd.port, "key": "env:TEST_DEPLOY_SSH_KEY"}
    remote["known_hosts"] = str(sshd.known_hosts)
    data["environments"] = {"dev": {"deployment": {"target": "remote-container", "remote": remote}}}
    (project / "shipyard.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    env = {"TEST_DEPLOY_SSH_KEY": sshd.client_key.read_text()}
    monkeypatch.setenv("TEST_DEPLOY_SSH_KEY", env["TEST_DEPLOY_SSH_KEY"])  # the teardown's delete
    ws = tmp_path / ".shipyard"

    def sy(*args: str, code: int = 0):
        res = shipyard_proc(*args, "--workspace", ws, "-o", "json", cwd=project, env=env, timeout=600)
        assert res.code == code, (args, res.out[-2000:], res.err[-3000:])
        assert "Traceback" not in res.err and "PRIVATE KEY" not in res.out + res.err
        return json.loads(res.out) if code == 0 else res.err

    def dev_url() -> str:
        (endpoint,) = [e for e in sy("endpoints", "list") if e["endpoint"] == "diabetes-dev"]
        return endpoint["url"]

    try:
        assert sy("run")["status"] == "succeeded"
        first = dev_url()
        assert first.startswith("http://127.0.0.1:")
        key = sy("endpoints", "keys", "rotate", "diabetes-dev")["key"]
        assert _score(first, key).status_code == 200  # the rotated key reached the host's copy
        assert _score(first, None).status_code == 401

        deployed = sy("deploy", "--target", "remote-container")
        assert deployed["target"] == "remote-container" and deployed["state"] == "active"
        assert deployed["url"] != first and dev_url() == deployed["url"]
        assert _score(deployed["url"], key).status_code == 200

        closed = free_port()
        data["environments"]["dev"]["deployment"]["remote"]["port"] = closed
        (project / "shipyard.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        err = sy("env", "deploy", "dev", "--version", "1", code=1)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and f"cannot reach 127.0.0.1:{closed}" in lines[0], err
        assert _score(deployed["url"], key).status_code == 200  # dev keeps serving
        data["environments"]["dev"]["deployment"]["remote"]["port"] = sshd.port
        (project / "shipyard.yaml").write_text(yaml.safe_dump(data, sort_keys=False))

        sy("endpoints", "delete", "diabetes-dev")
        assert not _exists(str(deployed["container_id"]))
    finally:
        teardown_endpoints(ws)
