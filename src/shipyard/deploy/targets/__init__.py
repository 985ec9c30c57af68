"""Deployment targets behind one interface (base.Target), in one table keyed by target type.

Like MLflow's store registry keyed by URI scheme, the table maps `deployment.target` to the class
that implements it ("module:Class", imported on first use, so that importing shipyard imports no
container or Kubernetes code). A new target (e.g. a remote container host) is one entry here and
one module beside the others.
"""

from __future__ import annotations

from importlib import import_module

from shipyard.deploy.targets.base import DeploymentSpec, Target, TargetHandle, handle_of
from shipyard.errors import ConfigError

TARGETS: dict[str, str] = {
    "local": "shipyard.deploy.targets.local:LocalTarget",
    "container": "shipyard.deploy.targets.container:ContainerTarget",
    "remote-container": "shipyard.deploy.targets.remote_container:RemoteContainerTarget",
    "kubernetes": "shipyard.deploy.targets.kubernetes:KubernetesTarget",
}


def target_names() -> str:
    """`local, container, remote-container or kubernetes`: the table's types, for messages."""
    names = list(TARGETS)
    return f"{', '.join(names[:-1])} or {names[-1]}"


def target_class(name: str | None) -> type[Target]:
    """The class implementing target type `name` (None: a record from before targets, local)."""
    path = TARGETS.get(name or "local")
    if path is None:
        raise ConfigError(f"deployment.target {name!r} has no implementation here: use {target_names()}")
    module, _, attr = path.partition(":")
    cls: type[Target] = getattr(import_module(module), attr)
    return cls


def get_target(name: str | None, runtime: str | None = None) -> Target:
    """The target of type `name`; `runtime` picks podman or docker for the targets that run images."""
    cls = target_class(name)
    return cls(runtime) if cls.builds_image else cls()  # type: ignore[call-arg]


__all__ = [
    "TARGETS",
    "DeploymentSpec",
    "Target",
    "TargetHandle",
    "get_target",
    "handle_of",
    "target_class",
    "target_names",
]
