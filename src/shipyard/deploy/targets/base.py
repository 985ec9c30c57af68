"""The deployment target interface: start a deployment, ask its state, read its logs, delete it.

Endpoints and rollouts talk to targets only through this interface, so a deployment behaves the
same whether it is a local process (targets/local.py) or a container (targets/container.py).
`apply` returns once the server answers `GET /` as the expected deployment, or raises
DeploymentError with the server's last log lines. What differs between targets is said by the
target class itself (`builds_image`, `runs_in_cluster`, `on_this_machine`), never by testing its
name: a Kubernetes
deployment (targets/kubernetes.py) is run by the cluster, so it is rendered and applied instead
of started here, and its record is trusted rather than checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

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
    capture_dir: Path | None = None  # where a local process writes capture files
    env: dict[str, str] = field(default_factory=dict)
    # The interpreter a local process runs with (None: Shipyard's own; venvs/serving.py).
    python: Path | None = None
    slot: str | None = None  # blue, green, ... (names the container)
    # Called with a local process's pid as soon as it exists (deploy/endpoints.spawn_recorder).
    on_spawn: Callable[[int], None] | None = None


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
    deployment_id: str | None = None  # finds a local server whose pid was never recorded
    process_start: str | None = None  # tells a recorded pid from a reused one (ownership.py)
    # How the target reaches the deployment from any machine (remote-container: the SSH
    # connection), or what it runs with (local: the interpreter and its environment); recorded,
    # so references only, never a secret.
    settings: dict[str, Any] | None = None


def handle_of(dep: Any) -> TargetHandle:
    """The handle of a recorded deployment (a deployment row or anything with its fields)."""
    log_path = getattr(dep, "log_path", None)
    return TargetHandle(
        target=getattr(dep, "target", None) or "local",
        url=dep.url or "",
        port=dep.port or 0,
        pid=dep.pid,
        container_id=getattr(dep, "container_id", None),
        log_path=Path(log_path) if log_path else None,
        deployment_id=getattr(dep, "id", None),
        process_start=getattr(dep, "process_start", None),
        settings=getattr(dep, "target_settings", None),
    )


class Target(Protocol):
    name: ClassVar[str]
    # The deployment runs an image built on this machine from the bundle (images/).
    builds_image: ClassVar[bool]
    # A cluster runs the deployment: it is rendered and applied (not started and smoke-tested
    # here), its record is trusted on every host, and the cluster reaps it at its ttl.
    runs_in_cluster: ClassVar[bool]
    # The deployment runs on the machine that deployed it, so it ends with that machine: on a CI
    # system's hosted runner, with the job (`shipyard ci generate` refuses such a release).
    on_this_machine: ClassVar[bool]

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
