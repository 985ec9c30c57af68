"""What a step sees: the workspace, the config, the run's parameters and earlier steps' outputs."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from shipyard import __version__
from shipyard.config.models import DataCheckConfig, DeploymentConfig, ProjectConfig
from shipyard.data.hashing import files_sha256, json_sha256
from shipyard.workspace import Workspace

if TYPE_CHECKING:
    from shipyard.pipeline.outputs import StepOutput

R = TypeVar("R")


@dataclass
class StepContext:
    ws: Workspace
    config: ProjectConfig
    pipeline_run_id: str
    params: dict[str, Any]
    outputs: dict[str, StepOutput] = field(default_factory=dict)  # step name → its output record
    parent_mlflow_run_id: str | None = None
    # In memory only, never recorded: plain endpoint keys a step created, shown once by the CLI.
    secrets: dict[str, Any] = field(default_factory=dict)

    def output(self, step: str, kind: type[R]) -> R:
        """The output record of the earlier step `step`, of type `kind`."""
        out = self.outputs[step]
        if not isinstance(out, kind):
            raise TypeError(f"step {step}'s output is a {type(out).__name__}, not a {kind.__name__}")
        return out

    @property
    def model_name(self) -> str:
        return self.config.registry.model_name

    @property
    def deployment(self) -> DeploymentConfig:
        # package/deploy/smoke_test are only selected when the project has a deployment.
        assert self.config.deployment is not None
        return self.config.deployment

    @property
    def data_check(self) -> DataCheckConfig:
        assert self.config.data_check is not None
        return self.config.data_check

    def log_dir(self) -> Path:
        return self.ws.subdir("runs", self.pipeline_run_id)

    def parent_run(self) -> str:
        """The pipeline's MLflow parent run, created on first use (cached runs never need it)."""
        if self.parent_mlflow_run_id is None:
            from shipyard.pipeline.records import set_mlflow_run

            exp_id = self.ws.experiment_id(self.config.experiment_name)
            run = self.ws.mlflow.create_run(
                exp_id,
                run_name=f"pipeline-{self.pipeline_run_id[:8]}",
                tags={"shipyard.pipeline_run_id": self.pipeline_run_id, "shipyard.project": self.config.name},
            )
            self.parent_mlflow_run_id = run.info.run_id
            set_mlflow_run(self.ws, self.pipeline_run_id, run.info.run_id)
        return self.parent_mlflow_run_id

    @cached_property
    def git_commit(self) -> str | None:
        """HEAD of the project's git repository, if it is one."""
        try:
            out = subprocess.run(
                ["git", "rev-parse", "HEAD"],
                cwd=self.config.project_dir,
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    def hash_files(self, relative: list[str | None]) -> dict[str, str]:
        """Content hashes of config-relative paths (missing files hash as 'missing')."""
        paths = [self.config.path(p) for p in relative if p]
        present = [p for p in paths if p.exists()]
        out = files_sha256(present, self.config.project_dir)
        out.update({str(p): "missing" for p in paths if not p.exists()})
        return out

    def environment_key(self, spec: str | None) -> dict[str, Any]:
        """The environment part of a cache key: the spec file's content, Python and Shipyard."""
        return {
            "spec": self.hash_files([spec]) if spec else None,
            "python": sys.version.split()[0],
            "shipyard": __version__,
        }

    @staticmethod
    def key(step: str, parts: dict[str, Any]) -> str:
        return json_sha256({"step": step, **parts})
