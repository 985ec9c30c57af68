"""Reading YAML (or JSON) config files into mappings, with errors that name the file and line.

shipyard.yaml, its workspace file and the Azure ML config files it imports all go through here, so
a typo in any of them gets the same kind of message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shipyard.errors import ConfigError


def read_yaml(path: Path, what: str = "settings") -> dict[str, Any]:
    """The top-level mapping of a YAML file (JSON is YAML too); {} for an empty file."""
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
        raise ConfigError(f"{path}: expected a mapping of {what} at the top level, got {type(data).__name__}")
    return data
