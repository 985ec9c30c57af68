"""Small helpers for tests that need files on disk."""

from __future__ import annotations

from pathlib import Path


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    """Write `files` (relative name -> bytes) under `root`; returns `root`."""
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root
