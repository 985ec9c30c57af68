"""`get_target(name)`: the built-in targets, then the compute: section, then clusters recorded in
the workspace by `shipyard compute create`.

Every target type is one `(type, "module:Class")` entry of `TARGETS`, imported only when a target
of that type is used, so importing shipyard never imports ray or a Spark helper. A class builds
itself from its settings (`from_spec`); a new backend is a module and one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from shipyard.compute.base import ComputeTarget
from shipyard.errors import ConfigError

if TYPE_CHECKING:
    from shipyard.config.compute import RayCompute

TARGETS: tuple[tuple[str, str], ...] = (
    ("local", "shipyard.compute.local:LocalTarget"),
    ("venv", "shipyard.compute.venv:VenvTarget"),
    ("ssh", "shipyard.compute.ssh.target:SshTarget"),
    ("ray", "shipyard.compute.ray.jobs:RayTarget"),
    ("spark", "shipyard.compute.spark:SparkTarget"),
)


def target_class(type_: str) -> type[ComputeTarget]:
    """The class of a target type (its module imported now)."""
    module, _, name = dict(TARGETS)[type_].partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def recorded_spec(ws: Any, name: str) -> RayCompute | None:
    """The settings of a cluster created from the command line (None when there is none)."""
    from shipyard.config.compute import RayCompute
    from shipyard.store.models import ComputeRow

    with ws.store.session() as s:
        row = s.get(ComputeRow, name)
        if row is None or row.state == "deleted":
            return None
        return RayCompute.model_validate(row.settings)


def compute_spec(name: str, ws: Any = None, config: Any = None) -> Any:
    """The settings of the named compute target (a config.compute model), or ConfigError."""
    from shipyard.config.compute import BUILT_IN

    sections = dict(getattr(config, "compute", None) or {})
    if name in sections:
        return sections[name]
    if ws is not None:
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
    from shipyard.config.compute import BUILT_IN

    if name in BUILT_IN:
        return target_class(name).from_spec(name, None, ws)
    spec = compute_spec(name, ws, config)
    return target_class(spec.type).from_spec(name, spec, ws)
