"""Read shipyard.yaml once, validate it, and resolve workspace settings with their precedence.

This is the one place that reads YAML and SHIPYARD_* environment variables; everything below
receives typed objects.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from shipyard.config.files import read_yaml as _read_yaml
from shipyard.config.models import AzureMLSource, DeploymentConfig, ProjectConfig, WorkspaceSettings
from shipyard.errors import ConfigError

log = logging.getLogger("shipyard.config")
# Warnings already shown by this process: a command that loads the config twice says them once.
_REPORTED: set[str] = set()

PROJECT_FILE = "shipyard.yaml"

# SHIPYARD_* variables that override workspace settings (CLI flags override these).
WORKSPACE_ENV = {
    "SHIPYARD_WORKSPACE": "root",
    "SHIPYARD_DATABASE_URI": "database_uri",
    "SHIPYARD_ARTIFACT_URI": "artifact_uri",
}


def find_project_file(start: Path | None = None) -> Path | None:
    """Return the nearest shipyard.yaml in `start` or one of its parents."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def format_validation_error(path: Path, exc: ValidationError, prefix: str = "") -> str:
    """One line per problem: file, dotted field, what was expected, what was given.

    `prefix` is the dotted place of the validated part in the file (e.g. deployment.azureml)."""
    lines = [f"{path}: invalid configuration"]
    for err in exc.errors():
        parts = [*(prefix.split(".") if prefix else []), *err["loc"]]
        field = ".".join(str(p) for p in parts) or "(top level)"
        given = err.get("input")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see docs/configuration.md)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "secret_reference" or "secrets" in parts:
            pass  # never echo what was written where a secret reference belongs
        else:
            shown = repr(given)
            msg = f"{msg} (got {shown[:60]})"
        lines.append(f"  {field}: {msg}")
    return "\n".join(lines)


def _field(model: type[BaseModel], key: str) -> tuple[set[str], type[BaseModel] | None]:
    """The spellings (name, alias) of the field `key` names, and its model if it is a section."""
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            types = (info.annotation, *get_args(info.annotation))
            sub = next((t for t in types if isinstance(t, type) and issubclass(t, BaseModel)), None)
            return {name, info.alias or name}, sub
    return {key}, None


def merge_explicit(
    imported: dict[str, Any], explicit: dict[str, Any], model: type[BaseModel] = DeploymentConfig
) -> dict[str, Any]:
    """`imported` overlaid with `explicit`, section by section: what shipyard.yaml sets wins, under
    either spelling of a field (`cpu` in the file replaces an imported `cpu_cores`)."""
    out = dict(imported)
    for key, value in explicit.items():
        spellings, sub = _field(model, key)
        previous = None
        for spelling in spellings:
            if spelling in out:
                previous = out.pop(spelling)
        if sub is not None and isinstance(value, dict) and isinstance(previous, dict):
            value = merge_explicit(previous, value, sub)
        out[key] = value
    return out


def _import_azureml(path: Path, data: dict[str, Any]) -> list[str]:
    """Fill `deployment` from the Azure ML files it names (deployment.azureml); the warnings."""
    from shipyard.config.azureml import import_azureml

    deployment = data.get("deployment")
    if not isinstance(deployment, dict) or deployment.get("azureml") is None:
        return []
    try:
        source = AzureMLSource.model_validate(deployment["azureml"])
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc, prefix="deployment.azureml")) from None
    folder = path.parent

    def resolve(relative: str | None) -> Path | None:
        return None if relative is None else folder / relative

    fields, warnings = import_azureml(
        resolve(source.deployment_config), resolve(source.inference_config), folder
    )
    data["deployment"] = merge_explicit(fields, deployment)
    return [str(w) for w in warnings]


def report_warnings(warnings: list[str]) -> None:
    """Log each warning once per process (the CLI shows WARNING lines on stderr)."""
    for text in warnings:
        if text not in _REPORTED:
            _REPORTED.add(text)
            log.warning("warning: %s", text)


def load_project(path: Path) -> ProjectConfig:
    """Load and validate a shipyard.yaml."""
    path = path.resolve()
    data = _read_yaml(path)
    ws = data.get("workspace")
    if isinstance(ws, dict) and ws.get("file"):
        ws_file = path.parent / ws["file"]
        data["workspace"] = {**_read_yaml(ws_file), **{k: v for k, v in ws.items() if k != "file"}}
    warnings = _import_azureml(path, data)
    try:
        config = ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from None
    config.project_dir = path.parent
    config.source_file = path
    config.anchor_paths()
    config.config_warnings = warnings
    report_warnings(warnings)
    return config


def parse_param_overrides(pairs: list[str]) -> dict[str, Any]:
    """`--param k=v` values; v is parsed as YAML so numbers and booleans keep their type."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {pair!r}: expected KEY=VALUE, e.g. --param alpha=0.1")
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def _refuse_password_in_file(uri: str, source: Path | None) -> None:
    """A config file is committed and shared: a database password has no place in it."""
    from urllib.parse import urlsplit

    try:
        has_password = urlsplit(uri).password is not None
    except ValueError:
        has_password = False
    if has_password:
        raise ConfigError(
            f"{source}: workspace.database_uri holds a password; remove it from the file and give it as "
            "workspace.database_password: env:NAME (or keyring:, file:), PGPASSWORD, ~/.pgpass, or the "
            "whole URI in the SHIPYARD_DATABASE_URI variable of the environment that runs Shipyard"
        )


def resolve_workspace_settings(
    project: ProjectConfig | None,
    cli: Mapping[str, str | None] | None = None,
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> WorkspaceSettings:
    """Merge workspace settings: CLI flag > SHIPYARD_* variable > file > default.

    The result has an absolute root and concrete database and artifact URIs.
    """
    env = os.environ if env is None else env
    base = (project.project_dir if project else (base_dir or Path.cwd())).resolve()
    if project is not None and project.workspace.database_uri:
        _refuse_password_in_file(project.workspace.database_uri, project.source_file)
    merged: dict[str, Any] = project.workspace.model_dump(exclude_none=True) if project else {}
    merged.pop("file", None)
    for var, field in WORKSPACE_ENV.items():
        if env.get(var):
            merged[field] = env[var]
    for field, value in (cli or {}).items():
        if value:
            merged[field] = value
    settings = WorkspaceSettings.model_validate(merged)
    root = Path(settings.root).expanduser()
    root = root if root.is_absolute() else base / root
    settings.root = str(root)
    if not settings.database_uri:
        settings.database_uri = f"sqlite:///{root / 'shipyard.db'}"
    if not settings.artifact_uri:
        settings.artifact_uri = (root / "artifacts").as_uri()
    return settings
