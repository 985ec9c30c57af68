"""Read shipyard.yaml once, validate it, and resolve workspace settings with their precedence.

This is the one place that reads YAML and SHIPYARD_* environment variables; everything below
receives typed objects.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shipyard.config.models import ProjectConfig, WorkspaceSettings
from shipyard.errors import ConfigError

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


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of settings at the top level, got {type(data).__name__}"
        )
    return data


def format_validation_error(path: Path, exc: ValidationError) -> str:
    """One line per problem: file, dotted field, what was expected, what was given."""
    lines = [f"{path}: invalid configuration"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        given = err.get("input")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see docs/configuration.md)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        else:
            shown = repr(given)
            msg = f"{msg} (got {shown[:60]})"
        lines.append(f"  {field}: {msg}")
    return "\n".join(lines)


def load_project(path: Path) -> ProjectConfig:
    """Load and validate a shipyard.yaml."""
    path = path.resolve()
    data = _read_yaml(path)
    ws = data.get("workspace")
    if isinstance(ws, dict) and ws.get("file"):
        ws_file = path.parent / ws["file"]
        data["workspace"] = {**_read_yaml(ws_file), **{k: v for k, v in ws.items() if k != "file"}}
    try:
        config = ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from None
    config.project_dir = path.parent
    config.source_file = path
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
