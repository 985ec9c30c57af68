"""FileStore: the artifact store on a local (or mounted) folder, the embedded default (file://).

Every write goes to a temp file in the destination's folder, is fsynced and renamed over the final
name (os.replace), so a reader sees the old or the new bytes and a kill -9 leaves at most a temp
file (named `.shipyard-tmp-*`, never listed), never a half file under a final name.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from shipyard.artifacts.store import (
    COMPLETE_MARKER,
    TEMP_PREFIX,
    FolderTransfers,
    Progress,
    validate_key,
    validate_prefix,
)
from shipyard.errors import ConfigError, NotFoundError, UsageError

_CHUNK = 1 << 20


class FileStore(FolderTransfers):
    """Artifacts as files below `root` (created on first write)."""

    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser().absolute()

    @classmethod
    def from_uri(cls, uri: str) -> FileStore:
        """file:///abs/path, file://localhost/abs/path, or a plain local path."""
        parsed = urlparse(uri)
        if parsed.scheme == "":
            return cls(Path(uri))
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"artifact URI {uri!r}: expected file:///absolute/path")
        return cls(Path(url2pathname(unquote(parsed.path))))

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    # -- primitives ------------------------------------------------------------------------------
    def put_file(self, local: Path, key: str, *, progress: Progress | None = None) -> None:
        dest = self._path(key)

        def copy(out: BinaryIO) -> None:
            with open(local, "rb") as src:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
                    if progress:
                        progress(len(chunk))

        self._write(dest, key, copy)

    def put_bytes(self, data: bytes, key: str) -> None:
        self._write(self._path(key), key, lambda out: out.write(data))

    def get_file(self, key: str, local: Path, *, progress: Progress | None = None) -> None:
        src = self._path(key)
        if not src.is_file():
            raise NotFoundError(f"{self.uri(key)}: no such artifact")
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)

        def copy(out: BinaryIO) -> None:
            with open(src, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    out.write(chunk)
                    if progress:
                        progress(len(chunk))

        atomic_write(local, copy)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFoundError(f"{self.uri(key)}: no such artifact") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def sizes(self, prefix: str = "") -> dict[str, int]:
        return {key: (self.root / key).stat().st_size for key in self.list(prefix)}

    def list(self, prefix: str = "") -> builtins.list[str]:
        prefix = validate_prefix(prefix, allow_root=True)
        base = self._path(prefix) if prefix else self.root
        if base.is_file():
            return [prefix]
        if not base.is_dir():
            return []
        keys = []
        for path in base.rglob("*"):
            rel = path.relative_to(self.root)
            if any(part.startswith(TEMP_PREFIX) for part in rel.parts) or not path.is_file():
                continue
            keys.append(rel.as_posix())
        return sorted(keys)

    def delete(self, prefix: str) -> int:
        prefix = validate_prefix(prefix)
        path = self._path(prefix)
        if path.is_file():
            path.unlink()
            return 1
        if not path.is_dir():
            return 0
        count = len(self.list(prefix))
        # The marker goes first: a folder half deleted by a crash reads as absent, not complete.
        with contextlib.suppress(FileNotFoundError):
            (path / COMPLETE_MARKER).unlink()
        shutil.rmtree(path)
        return count

    def uri(self, key: str = "") -> str:
        return (self._path(key) if key else self.root).as_uri()

    # -- helpers ---------------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        path = self.root / validate_key(key)
        # Keys cannot contain "..", but a symlink planted inside the root could still lead out.
        if not path.resolve().is_relative_to(self.root.resolve()):
            raise UsageError(f"artifact key {key!r} resolves outside the store root {self.root}")
        return path

    def _write(self, dest: Path, key: str, writer: Callable[[BinaryIO], object]) -> None:
        try:
            atomic_write(dest, writer)
        except (NotADirectoryError, FileExistsError, IsADirectoryError):
            raise UsageError(
                f"{self.uri(key)}: a folder and an object cannot share a name "
                "(a parent of this key is an object, or the key is a folder)"
            ) from None


def atomic_write(dest: Path, writer: Callable[[BinaryIO], object]) -> None:
    """Write `dest` through a temp file in its folder: write, fsync, rename into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=TEMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            writer(out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, _file_mode())  # mkstemp's 0600 would hide files from a team's shared folder
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(dest.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (best effort where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@functools.cache
def _file_mode() -> int:
    """0666 minus the process umask (read without os.umask, which is not thread-safe)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    return 0o644
