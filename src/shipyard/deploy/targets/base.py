"""The deployment target interface: start a deployment, ask its state, read its logs, delete it.

Endpoints and rollouts talk to targets only through this interface, so a deployment behaves the
same whether it is a local process (targets/local.py), a container (targets/container.py) or,
later, a Kubernetes Deployment. `apply` returns once the server answers `GET /` as the expected
deployment, or raises DeploymentError with the server's last log lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from shipyard.config.models import DeploymentConfig


@dataclass(frozen=True)
class DeploymentSpec:
    """What a target runs: one deployment of a bundle (local) or of its image (container)."""

    deployment_id: str
    endpoint: str
    config: DeploymentConfig
    bundle_dir: Path | None = None
    image: str | None = None  # image tag or id (container, kubernetes)
    settings_file: Path | None = None  # serving settings JSON
    keys_file: Path | None = None  # key hashes JSON (turns auth on)
    log_path: Path | None = None  # where a local process writes its log
    env: dict[str, str] = field(default_factory=dict)
    slot: str | None = None  # blue, green, ... (names the container)


@dataclass(frozen=True)
class TargetHandle:
    """A running deployment as its target knows it; stored on the deployment record."""

    target: str
    url: str
    port: int
    pid: int | None = None
    container_id: str | None = None
    name: str | None = None
    log_path: Path | None = None


class Target(Protocol):
    name: str

    def apply(self, spec: DeploymentSpec) -> TargetHandle:
        """Start the deployment and wait until it is healthy; DeploymentError otherwise."""
        ...

    def status(self, handle: TargetHandle) -> str:
        """running | exited | missing (and the target's own words for other states)."""
        ...

    def logs(self, handle: TargetHandle, tail: int = 50) -> str:
        """The last `tail` lines of the server's output."""
        ...

    def delete(self, handle: TargetHandle) -> None:
        """Stop and remove the deployment; no error if it is already gone."""
        ...
