"""Workspace locks that hold across machines: a lock lives where the shared state lives.

PostgreSQL: a session-level advisory lock on a connection of its own, so it is released when the
holder releases it or when its connection ends (a `kill -9`, a lost machine): no stale lock files.
SQLite: the database is a file on one machine, so a file lock beside it is the database lock (and
two checkouts pointing at one SQLite file share it, whatever their workspace roots).

What a lock serialises is short (a registration, a key rotation, a migration); decisions that
must be atomic with a write are compare-and-set statements instead (registry/models.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from shipyard.errors import ShipyardError
from shipyard.store import urls

_NAMESPACE = "shipyard:"


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock (the same on every machine)."""
    digest = hashlib.sha256((_NAMESPACE + name).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def database_lock(engine: Engine, uri: str, name: str, timeout: float) -> Iterator[None]:
    """Hold the workspace-wide lock `name` for the duration of the block."""
    if urls.is_sqlite(uri):
        with _file_lock(Path(engine.url.database or ".").resolve().parent / "locks", name, timeout):
            yield
        return
    if not uri.startswith("postgresql"):
        raise ShipyardError(f"workspace locks need SQLite or PostgreSQL, not {urls.redact(uri)}")
    with _advisory_lock(engine, name, timeout):
        yield


@contextmanager
def _file_lock(folder: Path, name: str, timeout: float) -> Iterator[None]:
    from filelock import FileLock, Timeout

    from shipyard.names import safe_join

    folder.mkdir(parents=True, exist_ok=True)
    path = safe_join(folder, f"{name}.lock")  # lock names carry user names (keys-<endpoint>)
    try:
        with FileLock(str(path), timeout=timeout):
            yield
    except Timeout:
        raise ShipyardError(
            f"timed out after {timeout:g} s waiting for the workspace lock {name!r} ({folder})"
        ) from None


@contextmanager
def _advisory_lock(engine: Engine, name: str, timeout: float) -> Iterator[None]:
    from sqlalchemy.exc import OperationalError

    key = lock_key(name)
    with engine.connect() as conn:
        # lock_timeout bounds the wait for an advisory lock as for any other lock.
        conn.execute(text(f"SET lock_timeout = {int(timeout * 1000)}"))
        try:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        except OperationalError as exc:
            if "lock timeout" not in str(exc):
                raise
            raise ShipyardError(
                f"timed out after {timeout:g} s waiting for the workspace lock {name!r} (held by another "
                "process on the shared database)"
            ) from None
        conn.commit()  # end the implicit transaction: the session-level lock outlives it
        try:
            yield
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.execute(text("SET lock_timeout = 0"))
                conn.commit()
            except Exception:
                conn.invalidate()  # closing the connection releases the lock
