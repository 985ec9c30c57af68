"""The Python a local scoring server runs in: Shipyard's own when it already satisfies the bundle's
requirements, else the bundle's own environment.

Shipyard's own interpreter satisfies a bundle when it satisfies every requirement of the bundle's
requirements.txt (shipyard/installed.py: the distribution installed at a version the specifier
allows, extras included). That is the common case, a model trained in Shipyard's own
environment, and it starts as before: no environment, no build.

Otherwise the server runs in an environment built from the bundle's requirements by the
environment cache (cache.py, runtime SERVING: the requirements plus what the server imports and
Shipyard's wheel, as in a scoring image), one per spec hash under `envs/serving-<hash12>/`,
built once under a host lock and reused by every later deployment of the same requirements.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import DeploymentError
from shipyard.installed import unmet
from shipyard.venvs.cache import SERVING, EnvBuildFailed, EnvCache, Progress
from shipyard.venvs.spec import read_env_spec

if TYPE_CHECKING:
    from shipyard.config.packages import PackageSources
    from shipyard.workspace import Workspace

OWN = "shipyard"  # the environment name of Shipyard's own interpreter


@dataclass(frozen=True)
class ServingPython:
    """The interpreter a server runs with: `environment` is OWN or the environment's folder name;
    `missing` the requirements Shipyard's own Python lacks (why an environment was needed)."""

    python: Path
    environment: str
    action: str  # own | reused | built | refreshed
    missing: tuple[str, ...] = field(default=())

    @property
    def own(self) -> bool:
        return self.environment == OWN

    def record(self) -> dict[str, Any]:
        """What a deployment records about it (and `endpoints list` shows)."""
        return {"python": str(self.python), "environment": self.environment}


def bundle_requirements(bundle_dir: Path) -> Path | None:
    """The bundle's requirements file (its manifest names it), or None when it has none."""
    try:
        manifest = json.loads((bundle_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        manifest = {}
    name = manifest.get("requirements") if isinstance(manifest, dict) else None
    path = bundle_dir / (name or "requirements.txt")
    return path if path.is_file() else None


def serving_python(
    ws: Workspace,
    bundle_dir: Path,
    packages: PackageSources | None = None,
    *,
    progress: Progress | None = None,
    installer: str | None = None,
) -> ServingPython:
    """The Python to serve `bundle_dir` with: Shipyard's own, or the bundle's environment (built now
    or reused, with `packages` as its package sources). DeploymentError, in one line naming the
    requirement, when the environment cannot be built."""
    spec = read_env_spec(bundle_requirements(bundle_dir), packages=packages)
    missing = tuple(unmet(spec.requirements))
    if not missing:
        return ServingPython(Path(sys.executable), OWN, "own")
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    say = progress or (lambda _message: None)
    say(f"the bundle needs {shown}, which Shipyard's Python lacks: preparing its own environment…")
    try:
        env = EnvCache(ws, installer=installer, runtime=SERVING).ensure(spec, say)
    except EnvBuildFailed as exc:
        raise DeploymentError(
            f"the bundle's environment cannot be built: {exc.summary} (log {exc.log})"
        ) from None
    return ServingPython(env.python, env.path.name, env.action, missing)
