"""Shipyard's own byte storage: bundles, data capture files, batch outputs, step outputs.

`open_store(uri)` gives the workspace's artifact store (file:// or s3://) behind the small
`ArtifactStore` interface; `LocalCache` keeps one content-addressed copy per machine of what was
stored, so a folder stored once is downloaded once per machine. Backends and the cache are imported
lazily: importing this package imports neither boto3 nor filelock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.artifacts.store import (
    BACKENDS,
    COMPLETE_MARKER,
    ArtifactStore,
    open_store,
    validate_key,
    validate_prefix,
)

if TYPE_CHECKING:
    from shipyard.artifacts.cache import LocalCache, default_cache_root
    from shipyard.artifacts.file_store import FileStore
    from shipyard.artifacts.s3_store import S3Store

_LAZY = {
    "LocalCache": "shipyard.artifacts.cache",
    "default_cache_root": "shipyard.artifacts.cache",
    "FileStore": "shipyard.artifacts.file_store",
    "S3Store": "shipyard.artifacts.s3_store",
}

__all__ = [
    "BACKENDS",
    "COMPLETE_MARKER",
    "ArtifactStore",
    "FileStore",
    "LocalCache",
    "S3Store",
    "default_cache_root",
    "open_store",
    "validate_key",
    "validate_prefix",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.artifacts' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
