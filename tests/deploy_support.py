"""Helpers of the deployment tests (router, rollout, images, containers): a workspace, a
deployment config, a recorded-looking bundle of a given version, the local base image."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from bundles import make_bundle
from tools import require_tool

from shipyard.config.loader import resolve_workspace_settings
from shipyard.config.models import DeploymentConfig
from shipyard.packaging.bundle import Bundle
from shipyard.workspace import Workspace

BASE = "localhost/shipyard-base:bookworm"
REPO = Path(__file__).resolve().parents[1]


def make_ws(root: Path) -> Workspace:
    return Workspace.get_or_create(resolve_workspace_settings(None, cli={"root": str(root)}))


@contextmanager
def cleaned_ws(root: Path) -> Iterator[Workspace]:
    """A workspace at `root` whose endpoints are deleted at the end, with whatever a failing test
    left running."""
    from shipyard.deploy.endpoints import delete_endpoint
    from shipyard.store.models import DeploymentRow

    workspace = make_ws(root)
    try:
        yield workspace
    finally:
        with workspace.store.session() as s:
            names = sorted({r.endpoint for r in s.query(DeploymentRow)})
        for name in names:
            delete_endpoint(workspace, name)
        workspace.store.dispose()


def config(name: str = "ep", **extra) -> DeploymentConfig:
    return DeploymentConfig.model_validate({"name": name, "serving": {"auth": False}, **extra})


def bundle_at(root: Path, version: str, score_py: str | None = None) -> Bundle:
    path, _ = make_bundle(root, score_py) if score_py else make_bundle(root)
    manifest = json.loads((path / "manifest.json").read_text()) | {"model_version": version}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return Bundle(f"bundle{version}".ljust(32, "0"), "diabetes-ridge", version, str(path), "0" * 64, manifest)


def deployment_of(client: httpx.Client, url: str) -> str:
    response = client.get(url + "/")
    assert response.status_code == 200, response.text
    return response.json()["deployment_id"]


def ensure_base_image() -> str:
    """The local base image, built by the script if podman has none (skip without the tools)."""
    require_tool("podman", "podman")
    if subprocess.run(["podman", "image", "exists", BASE]).returncode != 0:
        require_tool("debootstrap", "debootstrap")
        proc = subprocess.run(
            ["bash", str(REPO / "scripts" / "build-base-image.sh")], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return BASE


def port_refuses(port: int) -> bool:
    """Nothing accepts connections on 127.0.0.1:port (the server there is gone)."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True
