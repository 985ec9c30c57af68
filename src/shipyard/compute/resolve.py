"""`get_target(name)`: the built-in targets, then the compute: section, then clusters recorded in
the workspace by `shipyard compute create`."""

from __future__ import annotations

from typing import Any

from shipyard.compute.base import ComputeTarget
from shipyard.errors import ConfigError


def compute_spec(name: str, ws: Any = None, config: Any = None) -> Any:
    """The settings of the named compute target (a config.compute model), or ConfigError."""
    from shipyard.config.compute import BUILT_IN

    sections = dict(getattr(config, "compute", None) or {})
    if name in sections:
        return sections[name]
    if ws is not None:
        from shipyard.compute.clusters import recorded_spec

        spec = recorded_spec(ws, name)
        if spec is not None:
            return spec
    known = ", ".join([*BUILT_IN, *sections]) if sections else ", ".join(BUILT_IN)
    raise ConfigError(
        f"compute target {name!r} does not exist: use one of {known}, define it under compute: "
        f"in shipyard.yaml, or create a Ray cluster with `shipyard compute create {name} --type ray`"
    )


def get_target(name: str, ws: Any = None, config: Any = None) -> ComputeTarget:
    """The compute target called `name`: local (this Python), venv (an isolated environment per
    spec, cached in the workspace `ws`), or a named ssh/ray/spark target."""
    if name == "local":
        from shipyard.compute.local import LocalTarget

        return LocalTarget()
    if name == "venv":
        from shipyard.compute.venv import VenvTarget

        return VenvTarget(ws)
    spec = compute_spec(name, ws, config)
    if spec.type == "ssh":
        from shipyard.compute.ssh import SshTarget

        return SshTarget(
            spec.host,
            spec.port,
            spec.user,
            str(spec.key) if spec.key is not None else None,
            spec.known_hosts,
            spec.python,
            spec.workdir,
            accept_new=spec.accept_new_host_key,
        )
    if spec.type == "ray":
        from shipyard.compute.ray_jobs import RayTarget

        return RayTarget.for_compute(name, spec, ws)
    from shipyard.compute.spark import SparkTarget

    return SparkTarget(spec.master, spec.spark_submit, dict(spec.conf))
