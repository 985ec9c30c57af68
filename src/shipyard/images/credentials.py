"""Secrets for a registry push, resolved from references at the moment they are used.

Config files hold only references (`env:NAME`, `file:PATH`, `keyring:service/name`); the value is
read here and handed to the builder on stdin, never put on a command line, in the store or a log.
"""

from __future__ import annotations

import os
from pathlib import Path

from shipyard.errors import ConfigError


def resolve_secret(ref: str | None, field: str) -> str | None:
    """The value behind a secret reference (None for None); `field` names it in errors."""
    if ref is None:
        return None
    kind, _, rest = ref.partition(":")
    if kind == "env":
        value = os.environ.get(rest)
        if value is None:
            raise ConfigError(f"{field}: environment variable {rest} is not set")
        return value
    if kind == "file":
        path = Path(rest).expanduser()
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{field}: cannot read {path} ({exc.strerror})") from None
    if kind == "keyring":
        service, _, name = rest.partition("/")
        try:
            import keyring
        except ImportError:
            raise ConfigError(f"{field}: keyring references need the 'keyring' package installed") from None
        value = keyring.get_password(service, name)
        if value is None:
            raise ConfigError(f"{field}: no keyring entry {service}/{name}")
        return value
    raise ConfigError(f"{field}: {ref!r} is not a reference; use env:NAME, file:PATH or keyring:service/name")
