"""Endpoint keys: two per endpoint (primary, secondary), stored hashed, shown once.

Plain keys exist only in the output of the command that made them. Servers read the hashes from
`<workspace>/deployments/<endpoint>/keys.json`, which is rewritten atomically on every change, so
a rotation takes effect on the next request without a restart. The file is world-readable (0644):
it holds only SHA-256 hashes of 256-bit random keys, which authenticate nothing and cannot be
turned back into keys, and the server in a container runs as its own non-root user (uid 10001),
which must read it through the mounted folder. A target whose servers read a copy on another host
(remote-container) gets every rewrite (deploy/runtime.publish_keys).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select

from shipyard.errors import UsageError
from shipyard.names import check_name, shown
from shipyard.serving.server.auth import hash_key
from shipyard.store import utcnow
from shipyard.store.models import EndpointKey
from shipyard.workspace import Workspace

SLOTS = ("primary", "secondary")


def new_key() -> str:
    return secrets.token_urlsafe(32)


def keys_file(ws: Workspace, endpoint: str) -> Path:
    return ws.subdir("deployments", check_name("endpoint name", endpoint)) / "keys.json"


def _write_keys_file(ws: Workspace, endpoint: str, extra: dict[str, str] | None = None) -> Path:
    with ws.store.session() as s:
        rows = s.scalars(select(EndpointKey).where(EndpointKey.endpoint == endpoint))
        hashes = {k.slot: k.key_hash for k in rows}
    hashes.update(extra or {})
    path = keys_file(ws, endpoint)
    tmp = path.with_name(f".keys.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as fh:
        json.dump(hashes, fh)
    os.replace(tmp, path)
    from shipyard.deploy.runtime import publish_keys  # runtime starts servers with these files

    publish_keys(ws, endpoint, path)
    return path


def ensure_keys(ws: Workspace, endpoint: str) -> dict[str, str] | None:
    """Create the endpoint's keys if it has none; return the plain keys only when just created."""
    check_name("endpoint name", endpoint)
    with ws.lock(f"keys-{endpoint}"):
        with ws.store.session() as s:
            existing = set(s.scalars(select(EndpointKey.slot).where(EndpointKey.endpoint == endpoint)))
            created = {}
            for slot in SLOTS:
                if slot not in existing:
                    created[slot] = new_key()
                    s.add(
                        EndpointKey(
                            endpoint=endpoint,
                            slot=slot,
                            key_hash=hash_key(created[slot]),
                            created_at=utcnow(),
                        )
                    )
        _write_keys_file(ws, endpoint)
    return created or None


@contextmanager
def temporary_key(ws: Workspace, endpoint: str) -> Iterator[str]:
    """A key accepted by the endpoint's servers only while the block runs (for smoke tests).

    It is never stored: its hash is in the keys file for the duration, then removed.
    """
    key = new_key()
    with ws.lock(f"keys-{endpoint}"):
        _write_keys_file(ws, endpoint, {"smoke-test": hash_key(key)})
        try:
            yield key
        finally:
            _write_keys_file(ws, endpoint)


def rotate_key(ws: Workspace, endpoint: str, slot: str) -> str:
    """Replace one key; the old one stops working on the server's next request."""
    check_name("endpoint name", endpoint)
    if slot not in SLOTS:
        raise UsageError(f"--slot {shown(slot)}: expected primary or secondary")
    key = new_key()
    with ws.lock(f"keys-{endpoint}"):
        with ws.store.session() as s:
            row = s.get(EndpointKey, (endpoint, slot))
            if row is None:
                s.add(EndpointKey(endpoint=endpoint, slot=slot, key_hash=hash_key(key), created_at=utcnow()))
            else:
                row.key_hash, row.created_at = hash_key(key), utcnow()
        _write_keys_file(ws, endpoint)
    return key


def key_info(ws: Workspace, endpoint: str) -> list[dict[str, Any]]:
    """Which keys exist and when they were made (never the keys: only a hash prefix)."""
    check_name("endpoint name", endpoint)
    with ws.store.session() as s:
        rows = s.scalars(
            select(EndpointKey).where(EndpointKey.endpoint == endpoint).order_by(EndpointKey.slot)
        )
        return [
            {
                "endpoint": endpoint,
                "slot": r.slot,
                "fingerprint": r.key_hash[:12],
                "created_at": r.created_at.isoformat(timespec="seconds"),
            }
            for r in rows
        ]


def delete_keys(ws: Workspace, endpoint: str) -> None:
    """Forget an endpoint's keys (with the endpoint): a new endpoint of that name gets new ones."""
    with ws.lock(f"keys-{endpoint}"):
        with ws.store.session() as s:
            for row in s.scalars(select(EndpointKey).where(EndpointKey.endpoint == endpoint)):
                s.delete(row)
        keys_file(ws, endpoint).unlink(missing_ok=True)
