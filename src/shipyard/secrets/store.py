"""The `secrets:` section of shipyard.yaml: NAME → reference, resolved only when a step needs it.

Values live in this object's memory and in the environment of the step processes that ask for
them, nowhere else. A step that asks for one secret must not fail because another secret's
keyring is locked, so values are resolved per name and cached; `resolve_all` is for commands
that check the whole section up front.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from shipyard.errors import ConfigError
from shipyard.secrets.redact import Redactor
from shipyard.secrets.refs import SecretRef, parse_ref, resolve

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Variables a step's interpreter or Shipyard's runner depend on: a secret must not replace them.
_RESERVED = {"PATH", "HOME", "PYTHONPATH", "PYTHONHOME", "LD_PRELOAD", "LD_LIBRARY_PATH"}
_RESERVED_PREFIXES = ("SHIPYARD_", "MLFLOW_")


class Secrets:
    """References by name; values resolved on demand and kept in memory only."""

    def __init__(self, references: Mapping[str, str] | None = None, root: Path | None = None) -> None:
        """`references` is the `secrets:` section; `root` the project folder for relative file: paths.
        Every name and reference is checked here, so a bad section fails before any step runs."""
        self.root = root
        self.references: dict[str, SecretRef] = {}
        for name, text in (references or {}).items():
            self.references[_check_name(name)] = parse_ref(text, f"secrets.{name}")
        self._values: dict[str, str] = {}

    def __repr__(self) -> str:
        refs = ", ".join(f"{name}={ref}" for name, ref in self.references.items())
        return f"Secrets({refs})"

    @property
    def names(self) -> list[str]:
        return list(self.references)

    def resolve(self, name: str) -> str:
        """The value of one secret (read once, then cached in memory)."""
        if name not in self.references:
            known = ", ".join(self.references) or "none"
            raise ConfigError(
                f"secret {name} is not in the secrets: section of shipyard.yaml (defined: {known})"
            )
        if name not in self._values:
            self._values[name] = resolve(self.references[name], f"secrets.{name}", self.root)
        return self._values[name]

    def resolve_all(self) -> dict[str, str]:
        """Every value by name: checks the whole section (a command like `shipyard check`)."""
        return {name: self.resolve(name) for name in self.references}

    def env_for_step(self, names: Iterable[str]) -> dict[str, str]:
        """NAME → value for the environment of a step that asks for `names` (and only those)."""
        return {name: self.resolve(name) for name in dict.fromkeys(names)}

    def redactor(self) -> Redactor:
        """A redactor of every value resolved so far: only those can have reached a process."""
        return Redactor(dict(self._values))


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"secrets: {name!r} is not a valid name; use an environment variable name "
            "(letters, digits, _; not starting with a digit)"
        )
    if name.upper() in _RESERVED or name.upper().startswith(_RESERVED_PREFIXES):
        raise ConfigError(
            f"secrets.{name}: this name is reserved for the step's interpreter or for Shipyard "
            f"({', '.join(sorted(_RESERVED))}, {'*, '.join(_RESERVED_PREFIXES)}*); choose another"
        )
    return name
