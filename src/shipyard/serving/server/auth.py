"""Key auth: `Authorization: Bearer <key>` checked against SHA-256 hashes, never plain keys.

The endpoint's primary and secondary key hashes live in a small JSON file
(`{"primary": "<sha256>", "secondary": "<sha256>"}`) that the control plane rewrites atomically on
rotation; the server notices the new modification time on the next request, so a rotation needs
no restart. Any other entry in the file (a smoke test's short-lived key) is accepted too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from pathlib import Path

logger = logging.getLogger("shipyard.serving")


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyAuth:
    """Accepts a request whose bearer key hashes to one of the hashes in the keys file."""

    def __init__(self, keys_file: Path | None):
        self.keys_file = keys_file
        self._mtime: int | None = None
        self._hashes: dict[str, str] = {}

    def _current(self) -> list[str]:
        return list(self._refresh().values())

    def _refresh(self) -> dict[str, str]:
        if self.keys_file is None:
            return {}
        try:
            mtime = self.keys_file.stat().st_mtime_ns
        except FileNotFoundError:
            self._hashes, self._mtime = {}, None
            return {}
        if mtime != self._mtime:
            try:
                data = json.loads(self.keys_file.read_text())
                self._hashes = {k: v for k, v in data.items() if isinstance(v, str)}
                self._mtime = mtime
            except (OSError, ValueError) as exc:  # a half-written file: keep the previous keys
                logger.warning("cannot read keys file %s: %s", self.keys_file, exc)
        return self._hashes

    def check(self, authorization: str | None) -> str | None:
        """None when the header carries a valid key, else the reason it is refused."""
        if not authorization:
            return "missing Authorization header: send 'Authorization: Bearer <key>'"
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return "the Authorization header must be 'Bearer <key>'"
        given = hash_key(key.strip())
        valid = self._current()
        if not valid:
            return "this endpoint has no keys yet: create them with `shipyard endpoints keys rotate`"
        # compare_digest against every hash: constant time per candidate, no early exit on a match.
        ok = False
        for h in valid:
            ok |= hmac.compare_digest(given, h)
        return None if ok else "invalid key"
