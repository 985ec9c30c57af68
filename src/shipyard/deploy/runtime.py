"""A deployment's server on its target (`deployment.target`): started, checked, stopped.

deploy/endpoints.py and deploy/rollout.py work with deployment records; this module turns a
record into its target's handle (deploy/targets/) and back, so the same flow — start beside the
active one, health, smoke test, switch traffic, stop the old one — runs a local process or a
container. The container target needs an image: the bundle's newest one is reused, else built
(images/). Kubernetes deployments are not run from here: `shipyard deploy --target kubernetes`
renders (and with a kubeconfig applies) manifests through kube/.

The files a server reads are the same on every target: its serving settings (JSON), the
endpoint's key hashes when auth is on, and the capture folder (local processes only: inside a
container, capture writes to the container's own disk and the folder is not mounted).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.config.models import DeploymentConfig
from shipyard.deploy.keys import ensure_keys, keys_file
from shipyard.deploy.local import find_servers, start_server, stop_server, wait_healthy
from shipyard.deploy.targets import DeploymentSpec, TargetHandle, get_target
from shipyard.errors import ConfigError, DeploymentError
from shipyard.ownership import Owner, describe, owned_here, same_process
from shipyard.packaging.bundle import Bundle
from shipyard.processes import process_alive
from shipyard.workspace import Workspace

RUNNABLE = ("local", "container")


@dataclass
class ServerFiles:
    settings: Path
    keys: Path | None = None
    capture_dir: Path | None = None

    def args(self) -> list[str]:
        out = ["--settings", str(self.settings)]
        if self.keys is not None:
            out += ["--keys-file", str(self.keys)]
        if self.capture_dir is not None:
            out += ["--capture-dir", str(self.capture_dir)]
        return out


def settings_path(ws: Workspace, endpoint: str, deployment_id: str) -> Path:
    return ws.subdir("deployments", endpoint) / f"{deployment_id}.settings.json"


def write_server_files(
    ws: Workspace, config: DeploymentConfig, deployment_id: str
) -> tuple[ServerFiles, dict[str, str] | None]:
    """The server's settings file (auth on by default for deployments), keys and capture folder;
    plus the endpoint's plain keys when this call created them."""
    serving = config.serving.model_copy(deep=True)
    if serving.auth is None:
        serving.auth = True
    path = settings_path(ws, config.name, deployment_id)
    path.write_text(json.dumps(serving.model_dump(), indent=2))
    created = ensure_keys(ws, config.name) if serving.auth else None
    return _files(ws, config.name, path, serving.auth, serving.capture.enabled), created


def server_files(ws: Workspace, endpoint: str, deployment_id: str) -> ServerFiles:
    """The files an existing deployment was started with (to start it again)."""
    path = settings_path(ws, endpoint, deployment_id)
    stored = json.loads(path.read_text()) if path.is_file() else {}
    capture = bool((stored.get("capture") or {}).get("enabled"))
    return _files(ws, endpoint, path, bool(stored.get("auth")), capture)


def _files(ws: Workspace, endpoint: str, settings: Path, auth: bool, capture: bool) -> ServerFiles:
    return ServerFiles(
        settings,
        keys_file(ws, endpoint) if auth else None,
        ws.subdir("capture", endpoint) if capture else None,
    )


def launch(
    ws: Workspace,
    deployment_id: str,
    bundle: Bundle,
    config: DeploymentConfig,
    files: ServerFiles,
    log_path: Path,
    *,
    slot: str | None = None,
    image_id: str | None = None,
    on_spawn: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Start the deployment's server on `config.target` and wait until it is healthy; returns
    the fields to record (pid or container, port, url, image). DeploymentError if it fails.
    A local process is handed to `on_spawn(pid)` as soon as it exists (deploy/local.py)."""
    if config.target == "local":
        proc = start_server(
            Path(bundle.path), host=config.host, port=config.port, log_path=log_path,
            deployment_id=deployment_id, extra_args=files.args(), on_spawn=on_spawn,
        )  # fmt: skip
        try:
            wait_healthy(proc.url, config.health_timeout_s, expected_deployment_id=deployment_id)
        except DeploymentError:
            stop_server(proc.pid)
            raise
        owner = Owner.here(ws.root).fields(proc.pid)
        return {"pid": proc.pid, "port": proc.port, "url": proc.url, "target": "local", **owner}
    if config.target != "container":
        raise ConfigError(
            f"deployment.target {config.target!r} is not run by `deploy`: "
            "use `shipyard deploy --target kubernetes --render DIR` (or with a kubeconfig, to apply)"
        )
    from shipyard.images import get_image
    from shipyard.images.build import image_for_bundle

    image = get_image(ws, image_id) if image_id else image_for_bundle(ws, bundle, config.image)
    spec = DeploymentSpec(
        deployment_id=deployment_id, endpoint=config.name, config=config, image=image.tag,
        settings_file=files.settings, keys_file=files.keys, log_path=log_path, slot=slot,
    )  # fmt: skip
    handle = get_target("container", _runtime(config)).apply(spec)
    return {
        "port": handle.port, "url": handle.url, "container_id": handle.container_id,
        "image_id": image.id, "target": "container", **Owner.here(ws.root).fields(),
    }  # fmt: skip


def _runtime(config: DeploymentConfig) -> str | None:
    return config.image.builder if config.image.builder in ("podman", "docker") else None


def _handle(dep: Any) -> TargetHandle:
    return TargetHandle("container", dep.url or "", dep.port or 0, container_id=dep.container_id)


def stop(ws: Workspace, dep: Any) -> None:
    """Stop a deployment's server, whatever its target (no error if it is gone already).
    A deployment another host or checkout owns is refused: its pid means nothing here. A local
    server whose pid was never recorded (its starter died right after starting it) is found by
    the deployment id on its command line, never by a guess."""
    check_owned(ws, dep, "stop")
    if getattr(dep, "container_id", None):
        get_target("container").delete(_handle(dep))
    elif dep.pid:
        stop_server(dep.pid)
    elif getattr(dep, "target", "local") == "local":
        for pid in find_servers(dep.id):
            stop_server(pid)


def check_owned(ws: Workspace, dep: Any, action: str) -> None:
    """DeploymentError unless this host and workspace root own `dep` (Kubernetes: the cluster)."""
    if getattr(dep, "target", "local") != "kubernetes" and not owned_here(ws.root, dep):
        raise DeploymentError(
            f"cannot {action} deployment {dep.id[:8]} of endpoint {dep.endpoint}: it runs on "
            f"{describe(dep)}; run the command there"
        )


def alive(ws: Workspace, dep: Any) -> bool:
    """Is the deployment's server still running? (A Kubernetes deployment is the cluster's to
    run: its record is trusted here; `kube.apply.status` asks the cluster. So is one that another
    host or checkout owns: only its owner can tell, and must not be overruled from here.)"""
    if getattr(dep, "target", "local") == "kubernetes" or not owned_here(ws.root, dep):
        return True
    if getattr(dep, "container_id", None):
        try:
            return get_target("container").status(_handle(dep)) == "running"
        except ConfigError:  # podman/docker gone: nothing can be running
            return False
    return bool(dep.pid and process_alive(dep.pid) and same_process(dep))
