"""Conda environment files (Azure ML's `condaFile`) turned into pip requirements.

Azure ML builds its scoring image from a conda environment; Shipyard's bundles and images install
a pip `requirements.txt` into a plain Python. An environment file such as

    dependencies:
      - python=3.7.*
      - scikit-learn=0.24.2
      - pip:
          - azureml-defaults==1.38.0
          - inference-schema[numpy-support]

becomes `scikit-learn==0.24.2` and `inference-schema[numpy-support]`: conda's single `=` pins become
`==`, channel prefixes (`conda-forge::`) and build strings go, the pip section is kept as written.
Dropped with a note: `python` and `pip` themselves (the image's base decides the Python), and
Azure ML's serving stack (`azureml-defaults`, `azureml-inference-server-http`), which Shipyard's
scoring server replaces. Conda package names are kept: one that is named differently on PyPI
needs a pip entry.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from shipyard.config.files import read_yaml
from shipyard.errors import ConfigError

# Azure ML's own serving stack: Shipyard's server takes its place inside the image.
SERVING_STACK = frozenset({"azureml-defaults", "azureml-inference-server-http"})
_SKIP = frozenset({"python", "pip"})
_CONDA_SPEC = re.compile(r"^(?:[^:\s]+::)?(?P<name>[A-Za-z0-9_.\-]+(?:\[[^\]]*\])?)\s*(?P<spec>.*)$")
_PIP_NAME = re.compile(r"^\s*(?P<name>[A-Za-z0-9_.\-]+)")
_OPERATORS = ("==", ">=", "<=", "!=", "~=", ">", "<")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _conda_to_pip(item: str) -> tuple[str | None, str | None]:
    """One conda match spec → (pip requirement or None, note or None)."""
    match = _CONDA_SPEC.match(item.strip())
    if match is None:
        return None, f"{item!r} is not a conda package spec; left out"
    name, spec = match.group("name"), match.group("spec").strip()
    base = _canonical(name.split("[", 1)[0])
    if base in _SKIP:
        if base == "python" and spec:
            return None, (
                f"python {spec.lstrip('=')} is not installed from requirements: choose it with "
                "deployment.image.base (a base image with that Python)"
            )
        return None, None
    if base in SERVING_STACK:
        return None, f"{name} (Azure ML's serving stack) is left out: Shipyard's scoring server replaces it"
    if not spec:
        return name, None
    if "|" in spec:
        return name, f"{item!r}: conda alternatives (|) have no pip form; installed unpinned as {name}"
    if spec.startswith(_OPERATORS):
        return f"{name}{spec.replace(' ', '')}", None
    version = spec.lstrip("=").split("=", 1)[0].strip()  # drop a build string: name=1.0=py37_0
    return f"{name}=={version}", None


def conda_requirements(data: dict[str, Any], source: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(pip requirement lines, [(key, note)]) of a parsed conda environment file."""
    deps = data.get("dependencies")
    if deps is None:
        return [], []
    if not isinstance(deps, list):
        raise ConfigError(f"{source}: dependencies: expected a list of packages, got {type(deps).__name__}")
    lines: list[str] = []
    notes: list[tuple[str, str]] = []
    for index, item in enumerate(deps):
        key = f"dependencies[{index}]"
        if isinstance(item, str):
            requirement, note = _conda_to_pip(item)
        elif isinstance(item, dict) and set(item) == {"pip"} and isinstance(item["pip"], list | None):
            for j, line in enumerate(item["pip"] or []):
                if not isinstance(line, str):
                    raise ConfigError(
                        f"{source}: {key}.pip[{j}]: expected a requirement string, got {line!r}"
                    )
                name = _PIP_NAME.match(line)
                if name and _canonical(name.group("name")) in SERVING_STACK:
                    notes.append(
                        (
                            f"{key}.pip[{j}]",
                            f"{name.group('name')} (Azure ML's serving stack) is "
                            "left out: Shipyard's scoring server replaces it",
                        )
                    )
                else:
                    lines.append(line.strip())
            continue
        else:
            raise ConfigError(
                f"{source}: {key}: expected a package spec (e.g. scikit-learn=1.4) or a `pip:` list, "
                f"got {item!r}"
            )
        if requirement:
            lines.append(requirement)
        if note:
            notes.append((key, note))
    return lines, notes


def is_conda_file(path: Path) -> bool:
    """A conda environment file rather than a pip requirements file (by its extension)."""
    return path.suffix.lower() in (".yml", ".yaml")


def requirements_text(path: Path) -> str:
    """The pip requirements.txt content for a conda environment file (for bundles)."""
    lines, _ = conda_requirements(read_yaml(path, "conda environment settings"), str(path))
    return f"# from the conda environment {path.name}\n" + "".join(f"{line}\n" for line in lines)
