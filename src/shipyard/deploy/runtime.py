"""A deployment's server on its target (`deployment.target`): started, checked, stopped.

deploy/endpoints.py and deploy/rollout.py work with deployment records; this module turns a
record into its target's handle (the target table, deploy/targets/) and back, so the same flow —
start beside the active one, health, smoke test, switch traffic, stop the old one — runs a local
process or a container. A target that builds an image gets the bundle's newest one, else one
built now (images/). A target a cluster runs (Kubernetes) refuses to be started from here:
deploy/facade.py renders (and with a kubeconfig applies) its manifests through kube/.

The files a server reads are the same on every target: its serving settings (JSON), the
endpoint's key hashes when auth is on, and the capture folder (local processes only: inside a
container, capture writes to the container's own disk and the folder is not mounted).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.config.models import DeploymentConfig
from shipyard.deploy.keys import ensure_keys, keys_file
from shipyard.deploy.targets import DeploymentSpec, get_target, handle_of, target_class
from shipyard.errors import ConfigError, DeploymentError
from shipyard.ownership import Owner, describe, owned_here
from shipyard.packaging.bundle import Bundle
from shipyard.ssh import SshError
from shipyard.workspace import Workspace

if TYPE_CHECKING:
    from shipyard.images.build import ImageInfo


@dataclass
class ServerFiles:
    settings: Path
    keys: Path | None = None
    capture_dir: Path | None = None


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
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Start the deployment's server on `config.target` and wait until it is healthy; returns
    the fields to record (pid or container, port, url, image, and for a local process the
    interpreter it runs with). DeploymentError if it fails. A local process is handed to
    `on_spawn(pid)` as soon as it exists (deploy/local.py); `progress` is told what a long
    preparation (an environment build) is doing."""
    target = get_target(config.target, _runtime(config))
    image = _image(ws, bundle, config, image_id) if target.builds_image else None
    python = None
    if getattr(target, "runs_bundle_environment", False):
        from shipyard.venvs.serving import serving_python

        python = serving_python(ws, Path(bundle.path), config.packages, progress=progress)
    spec = DeploymentSpec(
        deployment_id=deployment_id,
        endpoint=config.name,
        config=config,
        bundle_dir=Path(bundle.path),
        image=image.tag if image else None,
        settings_file=files.settings,
        keys_file=files.keys,
        capture_dir=files.capture_dir,
        log_path=log_path,
        python=python.python if python is not None else None,
        slot=slot,
        on_spawn=on_spawn,
    )
    handle = target.apply(spec)
    settings = handle.settings if handle.settings is not None else python.record() if python else None
    recorded = {
        "pid": handle.pid,
        "port": handle.port,
        "url": handle.url,
        "container_id": handle.container_id,
        "image_id": image.id if image else None,
        "target_settings": settings,
    }
    # A deployment that outlives this machine has no owner here: any machine that can reach it
    # (its target_settings) may check and delete it (ownership.owned_here).
    owner = Owner.here(ws.root).fields(handle.pid) if target.on_this_machine else Owner.nobody()
    return {
        **{key: value for key, value in recorded.items() if value is not None},
        "target": target.name,
        **owner,
    }


def _image(ws: Workspace, bundle: Bundle, config: DeploymentConfig, image_id: str | None) -> ImageInfo:
    """The image a deployment runs: the one it ran before (a restart), else the bundle's newest,
    else one built now (images/)."""
    from shipyard.images import get_image
    from shipyard.images.build import image_for_bundle

    if image_id:
        return get_image(ws, image_id)
    return image_for_bundle(ws, bundle, config.image, packages=config.packages)


def _runtime(config: DeploymentConfig) -> str | None:
    return config.image.builder if config.image.builder in ("podman", "docker") else None


def publish_keys(ws: Workspace, endpoint: str, path: Path) -> None:
    """Hand a rewritten keys file to the endpoint's live deployments whose target keeps its own
    copy (`copies_keys`: a remote host), so that rotations and smoke-test keys reach them too."""
    from sqlalchemy import select

    from shipyard.store.models import DeploymentRow

    with ws.store.session() as s:
        rows = list(
            s.scalars(
                select(DeploymentRow).where(
                    DeploymentRow.endpoint == endpoint, DeploymentRow.state.in_(("healthy", "active"))
                )
            )
        )
    for row in rows:
        if getattr(target_class(row.target), "copies_keys", False):
            get_target(row.target).update_keys(handle_of(row), path)  # type: ignore[attr-defined]


def stop(ws: Workspace, dep: Any) -> None:
    """Stop a deployment's server, whatever its target (no error if it is gone already).
    A deployment another host or checkout owns is refused: its pid means nothing here."""
    check_owned(ws, dep, "stop")
    get_target(getattr(dep, "target", None)).delete(handle_of(dep))


def check_owned(ws: Workspace, dep: Any, action: str) -> None:
    """DeploymentError unless this host and workspace root own `dep` (a cluster's: the cluster)."""
    if not target_class(getattr(dep, "target", None)).runs_in_cluster and not owned_here(ws.root, dep):
        raise DeploymentError(
            f"cannot {action} deployment {dep.id[:8]} of endpoint {dep.endpoint}: it runs on "
            f"{describe(dep)}; run the command there"
        )


def alive(ws: Workspace, dep: Any) -> bool:
    """Is the deployment's server still running? (One a cluster runs is the cluster's to check:
    its record is trusted here; `kube.apply.status` asks the cluster. So is one that another host
    or checkout owns: only its owner can tell, and must not be overruled from here.)"""
    name = getattr(dep, "target", None)
    if target_class(name).runs_in_cluster or not owned_here(ws.root, dep):
        return True
    try:
        return get_target(name).status(handle_of(dep)) == "running"
    except ConfigError:  # podman/docker gone: nothing can be running
        return False
    except SshError:  # its host cannot be asked now: trust the record rather than call it dead
        return True
