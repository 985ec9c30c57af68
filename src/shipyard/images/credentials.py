"""Secrets for a registry push, resolved from references at the moment they are used.

Config files hold only references (`env:NAME`, `file:PATH`, `keyring:service/name`; see
shipyard.secrets); the value is read here and handed to the builder on stdin, never put on a
command line, in the store or a log.
"""

from __future__ import annotations

from shipyard.secrets.refs import resolve


def resolve_secret(ref: str | None, field: str) -> str | None:
    """The value behind a secret reference (None for None); `field` names it in errors."""
    return None if ref is None else resolve(ref, field)
