"""The artifact store: a tiny byte-storage interface (Metaflow's datastore style) and its URI table.

Shipyard keeps its own bytes (bundles, data capture files, batch outputs, step outputs) in the
workspace's artifact URI. A backend implements a handful of primitives on keys, which are relative
POSIX paths below the store's root; folders are key prefixes. `open_store(uri)` picks the backend
by URI scheme from one table, resolved lazily so that importing this package never imports boto3.

Keys are validated before any backend sees them, so a hostile name ("../x", "/etc/passwd",
"a//b", "a\\nb") can never address anything outside the root, on disk or in a bucket.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlparse

from shipyard.errors import ConfigError, UsageError

# scheme -> "module:Class"; each class has a `from_uri(uri)` classmethod.
BACKENDS: dict[str, str] = {
    "file": "shipyard.artifacts.file_store:FileStore",
    "s3": "shipyard.artifacts.s3_store:S3Store",
}

# The object written last by LocalCache.put_dir: a folder (prefix) without it is treated as absent.
# It is part of the folder's record, so get_dir never downloads it and delete() removes it first.
COMPLETE_MARKER = ".complete"

# Names of in-flight temporary files (FileStore); never valid as a key segment.
TEMP_PREFIX = ".shipyard-tmp-"

# Called with a number of bytes each time that many more were transferred.
Progress = Callable[[int], None]

_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
_DIR_WORKERS = 8


def validate_key(key: str, *, what: str = "key") -> str:
    """Return `key` if it is a safe relative POSIX path, else raise UsageError.

    Refused: empty keys, absolute paths, `.` or `..` segments, empty segments ("a//b", a trailing
    "/"), control characters (NUL, newline, ...), backslashes, and Shipyard's temp-file names.
    """
    if not isinstance(key, str) or not key:
        raise UsageError(f"artifact {what} must be a non-empty relative path, got {key!r}")
    if _BAD_CHARS.search(key):
        raise UsageError(
            f"artifact {what} {key!r}: control characters and backslashes are not allowed in keys"
        )
    if key.startswith("/"):
        raise UsageError(f"artifact {what} {key!r}: must be relative to the store root, not absolute")
    for segment in key.split("/"):
        if segment == "":
            raise UsageError(f'artifact {what} {key!r}: empty path segment ("//" or a trailing "/")')
        if segment in (".", ".."):
            raise UsageError(f"artifact {what} {key!r}: '.' and '..' segments are not allowed")
        if segment.startswith(TEMP_PREFIX):
            raise UsageError(f"artifact {what} {key!r}: names starting {TEMP_PREFIX!r} are reserved")
    return key


def validate_prefix(prefix: str, *, allow_root: bool = False) -> str:
    """A folder-like prefix: a valid key, optionally with one trailing "/" (dropped).

    `allow_root` accepts "" (the whole store), used by `list`."""
    if allow_root and prefix in ("", "/"):
        return ""
    if isinstance(prefix, str) and prefix.endswith("/") and not prefix.endswith("//"):
        prefix = prefix[:-1]
    return validate_key(prefix, what="prefix")


def join_key(prefix: str, name: str) -> str:
    """`prefix/name` (or `name` for the root prefix "")."""
    return f"{prefix}/{name}" if prefix else name


def under_prefix(key: str, prefix: str) -> bool:
    """Whether `key` is `prefix` itself or lies in the folder `prefix/` ("a" does not hold "ab")."""
    return not prefix or key == prefix or key.startswith(prefix + "/")


@runtime_checkable
class ArtifactStore(Protocol):
    """Byte storage below one root. Keys are relative POSIX paths ("bundles/abc/model.pkl").

    `list`, `delete`, `put_dir` and `get_dir` treat a prefix as a folder: "a" covers "a" and
    "a/..." but not "ab". Missing keys raise NotFoundError; unsafe keys raise UsageError.
    """

    def put_file(self, local: Path, key: str, *, progress: Progress | None = None) -> None:
        """Store the file `local` under `key` (atomic: readers see the old or the new bytes)."""
        ...

    def put_bytes(self, data: bytes, key: str) -> None:
        """Store `data` under `key` (atomic)."""
        ...

    def get_file(self, key: str, local: Path, *, progress: Progress | None = None) -> None:
        """Write the object `key` to the file `local` (via a temp file renamed into place)."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The bytes of the object `key`."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""
        ...

    def size(self, key: str) -> int | None:
        """The stored object's size in bytes, or None when there is none under `key`."""
        ...

    def sizes(self, prefix: str = "") -> dict[str, int]:
        """Every key under `prefix` (as `list` gives them) with its size in bytes."""
        ...

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys below `prefix` (recursive, relative to the store root, sorted); "" lists all."""
        ...

    def delete(self, prefix: str) -> int:
        """Delete the object `prefix` and everything below `prefix/`; returns how many objects."""
        ...

    def put_dir(
        self, local_dir: Path, prefix: str, *, progress: Progress | None = None
    ) -> builtins.list[str]:
        """Store every file below `local_dir` under `prefix/`; returns the keys written."""
        ...

    def get_dir(
        self, prefix: str, local_dir: Path, *, progress: Progress | None = None
    ) -> builtins.list[str]:
        """Write every object below `prefix/` into `local_dir` (the marker excepted); returns the
        relative names written."""
        ...

    def uri(self, key: str = "") -> str:
        """The full URI of `key` ("" → the store's root URI)."""
        ...


class FolderTransfers:
    """`put_dir`/`get_dir` for a backend, in terms of its `put_file`, `get_file` and `list`.

    Files are transferred by a few threads (an S3 round trip per small file adds up)."""

    def put_file(self, local: Path, key: str, *, progress: Progress | None = None) -> None:
        raise NotImplementedError

    def get_file(self, key: str, local: Path, *, progress: Progress | None = None) -> None:
        raise NotImplementedError

    def list(self, prefix: str = "") -> builtins.list[str]:
        raise NotImplementedError

    def put_dir(
        self, local_dir: Path, prefix: str, *, progress: Progress | None = None
    ) -> builtins.list[str]:
        prefix = validate_prefix(prefix)
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise UsageError(f"{local_dir}: not a folder")
        jobs = []
        for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
            rel = path.relative_to(local_dir).as_posix()
            jobs.append((path, join_key(prefix, validate_key(rel, what="file name"))))
        _run_all([functools.partial(self.put_file, p, k, progress=progress) for p, k in jobs])
        return [k for _, k in jobs]

    def get_dir(
        self, prefix: str, local_dir: Path, *, progress: Progress | None = None
    ) -> builtins.list[str]:
        prefix = validate_prefix(prefix)
        local_dir = Path(local_dir)
        marker = join_key(prefix, COMPLETE_MARKER)
        names = []
        for key in self.list(prefix):
            if key == marker:
                continue
            if key == prefix:  # `prefix` is an object, not a folder
                raise UsageError(f"{self.uri(prefix)} is a single object, not a folder")
            names.append(validate_key(key[len(prefix) + 1 :], what="stored name"))
        local_dir.mkdir(parents=True, exist_ok=True)
        _run_all(
            [
                functools.partial(self.get_file, join_key(prefix, n), local_dir / n, progress=progress)
                for n in names
            ]
        )
        return names

    def uri(self, key: str = "") -> str:
        raise NotImplementedError


def _run_all(calls: builtins.list[Callable[[], object]]) -> None:
    """Run the calls on a few threads; the first exception (in call order) is raised."""
    if len(calls) <= 1:
        for call in calls:
            call()
        return
    with ThreadPoolExecutor(max_workers=min(_DIR_WORKERS, len(calls))) as pool:
        futures = [pool.submit(call) for call in calls]
    for future in futures:
        future.result()


def open_store(uri: str) -> ArtifactStore:
    """The artifact store for `uri`: file:///path (or a plain local path) or s3://bucket/prefix."""
    scheme = urlparse(uri).scheme.lower()
    target = BACKENDS.get(scheme or "file")
    if target is None:
        supported = ", ".join(f"{s}://" for s in BACKENDS)
        raise ConfigError(f"artifact URI {uri!r}: unsupported scheme {scheme!r}; supported: {supported}")
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    store: ArtifactStore = cls.from_uri(uri)
    return store
