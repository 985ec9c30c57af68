"""Deployment targets behind one interface (base.Target): local process, container."""

from __future__ import annotations

from shipyard.deploy.targets.base import DeploymentSpec, Target, TargetHandle
from shipyard.errors import ConfigError


def get_target(name: str, runtime: str | None = None) -> Target:
    """The target called `name` (local, container); `runtime` picks podman or docker for containers."""
    if name == "local":
        from shipyard.deploy.targets.local import LocalTarget

        return LocalTarget()
    if name == "container":
        from shipyard.deploy.targets.container import ContainerTarget

        return ContainerTarget(runtime)
    raise ConfigError(f"deployment.target {name!r} has no implementation here: use local or container")


__all__ = ["DeploymentSpec", "Target", "TargetHandle", "get_target"]
