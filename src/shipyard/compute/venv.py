"""The venv target: a job's script runs with the Python of the environment built from its spec.

The environments themselves are shipyard/venvs/ (one per spec hash, built once under a lock,
crash-safe, reused), shared with local serving. The script then runs as on the local target,
with the environment's Python and without the host's PYTHONPATH/PYTHONHOME, so only what the spec
(and Shipyard) brings is importable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.compute.base import StepJob
from shipyard.compute.local import LocalTarget
from shipyard.venvs.cache import BuiltEnv, EnvCache, activated
from shipyard.venvs.spec import EnvSpec, read_env_spec

if TYPE_CHECKING:
    from shipyard.workspace import Workspace


class VenvTarget(LocalTarget):
    """Runs a job's script with the Python of the environment built from `job.environment`."""

    name = "venv"

    def __init__(
        self,
        ws: Workspace,
        *,
        installer: str | None = None,
        base_python: Path | None = None,
        grace_s: float = 5.0,
    ):
        super().__init__(grace_s=grace_s)
        self.envs = EnvCache(ws, installer=installer, base_python=base_python)
        self.last_env: BuiltEnv | None = None

    @classmethod
    def from_spec(cls, name: str, spec: Any, ws: Any) -> VenvTarget:
        """The built-in venv target: environments cached in the workspace `ws`."""
        return cls(ws)

    def spec(self, job: StepJob) -> EnvSpec:
        path = job.environment
        if path is not None and not Path(path).is_absolute():
            path = job.project_dir / path
        return read_env_spec(path, packages=job.packages)

    def prepare(self, job: StepJob) -> BuiltEnv:
        """Build or reuse the job's environment (also called by submit)."""
        self.last_env = self.envs.ensure(self.spec(job))
        return self.last_env

    def interpreter(self, job: StepJob) -> Path:
        return self.prepare(job).python

    def base_environment(self, job: StepJob, python: Path) -> dict[str, str]:
        return activated(os.environ, python)
