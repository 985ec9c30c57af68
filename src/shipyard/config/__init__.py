"""Typed configuration: shipyard.yaml models, loaders and workspace settings resolution."""

from shipyard.config.loader import find_project_file, load_project, resolve_workspace_settings
from shipyard.config.models import (
    DataCheckConfig,
    DeploymentConfig,
    GateConfig,
    ProjectConfig,
    RegistryConfig,
    TrainConfig,
    WorkspaceSettings,
)

__all__ = [
    "DataCheckConfig",
    "DeploymentConfig",
    "GateConfig",
    "ProjectConfig",
    "RegistryConfig",
    "TrainConfig",
    "WorkspaceSettings",
    "find_project_file",
    "load_project",
    "resolve_workspace_settings",
]
