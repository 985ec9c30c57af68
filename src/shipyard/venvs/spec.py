"""Environment specs: what a Python environment must contain, and a hash that names it.

A spec is a pip `requirements.txt` or an Azure ML conda environment file (`conda_dependencies.yml`:
conda packages plus a nested `- pip: [...]` list, converted by shipyard.config.conda). Both resolve
to one normalized list of pip requirements: canonical package names (`Scikit_Learn` →
`scikit-learn`), sorted extras, specifiers without spaces in a fixed order, duplicates removed,
the list sorted. Its hash (sha256 of that list plus the Python that runs it, and where the
packages come from when shipyard.yaml's `packages:` says so) names the built environment
(`<workspace>/envs/<hash12>/`), so reordering or reformatting a file changes nothing while
changing a pin changes it. The package sources enter the hash as written: a reference by its
name (`env:PRIVATE_INDEX_URL`), never the URL behind it.

pip options (`-r`, `-e`, `--index-url`, ...) are refused: they would make the environment depend
on more than the file's text (and index URLs often carry credentials); indexes and find-links are
`packages:` settings (config/packages.py).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from shipyard.config.conda import conda_requirements, is_conda_file
from shipyard.config.files import read_yaml
from shipyard.config.packages import PackageSources
from shipyard.errors import ConfigError


def python_tag(version: tuple[int, int] | None = None) -> str:
    """The interpreter part of the hash: implementation and major.minor (a venv follows patch updates)."""
    major, minor = version or sys.version_info[:2]
    return f"{sys.implementation.name}-{major}.{minor}"


@dataclass(frozen=True)
class EnvSpec:
    """A resolved spec: normalized pip requirements, the Python tag, notes from the conversion and
    where its packages come from (None: the installer's defaults)."""

    requirements: tuple[str, ...]
    python: str
    source: Path | None = None
    notes: tuple[str, ...] = ()
    packages: PackageSources | None = None

    @property
    def hash(self) -> str:
        fields: dict[str, object] = {"python": self.python, "requirements": list(self.requirements)}
        if self.packages is not None and not self.packages.empty:  # without them: the hash as before
            fields["packages"] = self.packages.fingerprint()
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()

    @property
    def short_hash(self) -> str:
        return self.hash[:12]

    def names(self) -> set[str]:
        """Canonical names of the packages the spec lists."""
        return {canonicalize_name(Requirement(line).name) for line in self.requirements}


def normalize_requirement(line: str, where: str) -> str:
    """One requirement in canonical form; ConfigError naming `where` when it is not one."""
    text = line.strip()
    if text.startswith("-"):
        raise ConfigError(
            f"{where}: {text!r}: pip options are not supported in an environment spec; list one package "
            "per line and give indexes and find-links in shipyard.yaml's packages: section "
            "(index_url, extra_index_urls, find_links)"
        )
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise ConfigError(f"{where}: {text!r} is not a pip requirement ({exc})") from None
    out: str = canonicalize_name(req.name)
    if req.extras:
        out += "[" + ",".join(sorted(canonicalize_name(e) for e in req.extras)) + "]"
    if req.url:
        out += f" @ {req.url}"
    elif req.specifier:
        out += ",".join(sorted(str(s) for s in req.specifier))
    if req.marker:
        out += f"; {req.marker}"
    return out


def _requirements_lines(path: Path) -> list[tuple[str, str]]:
    """(line, where) of a requirements.txt, without comments and blank lines."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the environment spec ({exc.strerror})") from None
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line:
            out.append((line, f"{path}:{number}"))
    return out


def _conda_lines(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    lines, notes = conda_requirements(read_yaml(path, "conda environment"), str(path))
    messages = []
    for key, note in notes:
        if note.startswith("python "):  # the converter's advice is about images; here the interpreter decides
            note = f"python {note.split(' ', 2)[1]} is not used: the environment runs {python_tag()}"
        messages.append(f"{path}: {key}: {note}")
    return [(line, f"{path}: dependencies") for line in lines], messages


def read_env_spec(
    path: Path | None, python: str | None = None, packages: PackageSources | None = None
) -> EnvSpec:
    """Resolve a spec file (requirements.txt or conda .yml/.yaml); None is the empty spec.
    `packages` says where its packages come from (shipyard.yaml's `packages:`)."""
    tag = python or python_tag()
    if path is None:
        return EnvSpec((), tag, packages=packages)
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"environment spec {path} does not exist (expected a requirements.txt or conda .yml)"
        )
    if is_conda_file(path):
        lines, notes = _conda_lines(path)
    else:
        lines, notes = _requirements_lines(path), []
    requirements = sorted({normalize_requirement(line, where) for line, where in lines})
    return EnvSpec(tuple(requirements), tag, path, tuple(notes), packages)
