"""Content hashes: of files, folders and JSON-able values (cache keys, dataset versions)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_sha256(root: Path) -> str:
    """SHA-256 over every file below `root` (relative names and contents, in sorted order)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def json_sha256(value: Any) -> str:
    """SHA-256 of a JSON-able value in canonical form (sorted keys)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def files_sha256(paths: Iterable[Path], base: Path) -> dict[str, str]:
    """Content hash of each path, keyed by its name relative to `base`; folders hash as trees."""
    out: dict[str, str] = {}
    for path in paths:
        try:
            name = path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            name = str(path)
        out[name] = tree_sha256(path) if path.is_dir() else file_sha256(path)
    return out
