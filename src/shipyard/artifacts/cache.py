"""LocalCache: this machine's content-addressed copy of stored folders and files.

A folder stored once (a bundle, a step output) is downloaded once per machine: entries are keyed
by content hash (`shipyard.data.hashing.tree_sha256` for folders, `file_sha256` for files), so a
cache hit needs no request to the store at all. Layout below the root:

    dirs/<hash>/content/...        a published folder (what fetch_dir returns)
    dirs/<hash>/entry.json         hash function, source URI, size; its mtime is the last use (LRU)
    files/<sha256>/content/<name>  a published file
    <kind>/.tmp-<hash>-*/          a download (or removal) in flight, or left by a killed process
    locks/<kind>-<hash>.lock       one inter-process lock per entry (filelock; this cache is local)

A download goes into a temp dir beside its entry, is verified against the hash and renamed into
place, so a reader never sees a half folder and a kill -9 leaves only a temp dir that `prune`
removes. In the store, a folder is complete only once its `.complete` marker (holding the content
hash) exists: `put_dir` writes it last, and a prefix without it reads as absent.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.artifacts.file_store import atomic_write, fsync_dir
from shipyard.artifacts.store import (
    COMPLETE_MARKER,
    ArtifactStore,
    Progress,
    join_key,
    validate_key,
    validate_prefix,
)
from shipyard.data.hashing import file_sha256, tree_sha256
from shipyard.errors import NotFoundError, StorageError, UsageError

HASH_FUNCTIONS = {
    "dir": "shipyard.data.hashing.tree_sha256",
    "file": "shipyard.data.hashing.file_sha256",
}
_KIND_DIRS = {"dir": "dirs", "file": "files"}
_ENTRY = "entry.json"
_CONTENT = "content"
_TMP = ".tmp-"
_HASH = re.compile(r"^[0-9a-f]{64}$")
_PROGRESS_MIN_BYTES = 16 << 20


def _clock() -> float:
    """Wall-clock time of last-use stamps (a seam for tests)."""
    return time.time()


def default_cache_root(env: Mapping[str, str] | None = None) -> Path:
    """SHIPYARD_CACHE_DIR, else $XDG_CACHE_HOME/shipyard/artifacts, else ~/.cache/shipyard/artifacts."""
    env = os.environ if env is None else env
    if env.get("SHIPYARD_CACHE_DIR"):
        return Path(env["SHIPYARD_CACHE_DIR"]).expanduser()
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "shipyard" / "artifacts"


@dataclass(frozen=True)
class _Entry:
    kind: str
    hash: str
    path: Path
    meta: dict[str, Any]
    last_used: float

    @property
    def size(self) -> int:
        return int(self.meta.get("size_bytes", 0))

    @property
    def content(self) -> Path:
        name = self.meta.get("name")
        return self.path / _CONTENT / name if name else self.path / _CONTENT


class LocalCache:
    """Content-addressed local copies of stored folders and files (see the module docstring).

    `lock_timeout_s`: how long to wait for another process downloading the same entry.
    `progress`: show a Rich progress bar on stderr (None: when stderr is a terminal).
    """

    def __init__(
        self, root: Path | str | None = None, *, lock_timeout_s: float = 1800, progress: bool | None = None
    ):
        self.root = Path(root).expanduser().absolute() if root else default_cache_root().absolute()
        self.lock_timeout_s = lock_timeout_s
        self.progress = progress

    def __repr__(self) -> str:
        return f"LocalCache({str(self.root)!r})"

    # -- fetch -----------------------------------------------------------------------------------
    def fetch_dir(self, store: ArtifactStore, prefix: str, content_hash: str) -> Path:
        """A local folder with the content of the stored folder `prefix` (hash `content_hash`).

        Downloaded once per hash and machine, verified before it is published. Raises NotFoundError
        when the store has no complete folder there, StorageError when its content has another hash.
        """
        content_hash = _check_hash(content_hash)
        prefix = validate_prefix(prefix)
        if (hit := self._hit("dir", content_hash)) is not None:
            return hit
        with self._locked("dir", content_hash):
            if (hit := self._hit("dir", content_hash)) is not None:
                return hit
            source = store.uri(prefix)
            marker = read_marker(store, prefix)
            if marker is None:
                raise NotFoundError(
                    f"{source}: no complete folder there (no {COMPLETE_MARKER} marker: it was never "
                    "stored, or its upload was interrupted; store it again)"
                )
            if marker.get("content_hash") != content_hash:
                raise StorageError(
                    f"{source} holds content {str(marker.get('content_hash'))[:12]}…, not the requested "
                    f"{content_hash[:12]}…: the folder was replaced, or the reference is stale"
                )
            tmp = self._tmp_dir("dir", content_hash)
            try:
                with self._progress(f"downloading {source}", marker.get("size_bytes")) as advance:
                    store.get_dir(prefix, tmp / _CONTENT, progress=advance)
                return self._publish(tmp, "dir", content_hash, source=source).content
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

    def fetch_file(self, store: ArtifactStore, key: str, sha256: str) -> Path:
        """A local copy of the stored file `key` whose SHA-256 is `sha256` (kept under its name)."""
        sha256 = _check_hash(sha256)
        key = validate_key(key)
        if (hit := self._hit("file", sha256)) is not None:
            return hit
        with self._locked("file", sha256):
            if (hit := self._hit("file", sha256)) is not None:
                return hit
            name = key.rsplit("/", 1)[-1]
            tmp = self._tmp_dir("file", sha256)
            try:
                with self._progress(f"downloading {store.uri(key)}", None) as advance:
                    store.get_file(key, tmp / _CONTENT / name, progress=advance)
                return self._publish(tmp, "file", sha256, source=store.uri(key), name=name).content
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

    def path(self, content_hash: str, kind: str = "dir") -> Path | None:
        """The cached content for a hash, or None (no store access; counts as a use)."""
        return self._hit(_check_kind(kind), _check_hash(content_hash))

    # -- put -------------------------------------------------------------------------------------
    def put_dir(self, store: ArtifactStore, local_dir: Path, prefix: str) -> str:
        """Store `local_dir` under `prefix` and return its content hash.

        Skips the upload when the store already holds this content there (its marker says so);
        otherwise clears the prefix, uploads, and writes the `.complete` marker last. The folder
        also becomes this machine's cache entry. Give each content its own prefix (e.g. one with the
        hash in it): two machines writing different folders to one prefix at once is not supported.
        """
        local_dir = Path(local_dir)
        prefix = validate_prefix(prefix)
        if not local_dir.is_dir():
            raise UsageError(f"{local_dir}: not a folder")
        if (local_dir / COMPLETE_MARKER).exists():
            raise UsageError(
                f"{local_dir}: {COMPLETE_MARKER} is a reserved name at the top of a stored folder"
            )
        content_hash = tree_sha256(local_dir)
        files, size = _tree_stats(local_dir)
        marker = read_marker(store, prefix)
        if marker is None or marker.get("content_hash") != content_hash:
            if marker is not None or store.list(prefix):
                store.delete(prefix)  # a different or half-written folder: nothing of it may remain
            with self._progress(f"uploading {store.uri(prefix)}", size) as advance:
                store.put_dir(local_dir, prefix, progress=advance)
            body = {
                "content_hash": content_hash,
                "hash_function": HASH_FUNCTIONS["dir"],
                "files": files,
                "size_bytes": size,
            }
            store.put_bytes(json.dumps(body, sort_keys=True).encode(), join_key(prefix, COMPLETE_MARKER))
        self._seed("dir", content_hash, local_dir, source=store.uri(prefix))
        return content_hash

    def put_file(self, store: ArtifactStore, local: Path, key: str) -> str:
        """Store the file `local` under `key` (one atomic object) and return its SHA-256."""
        local = Path(local)
        if not local.is_file():
            raise UsageError(f"{local}: not a file")
        sha256 = file_sha256(local)
        with self._progress(f"uploading {store.uri(key)}", local.stat().st_size) as advance:
            store.put_file(local, key, progress=advance)
        self._seed("file", sha256, local, source=store.uri(key))
        return sha256

    # -- housekeeping ----------------------------------------------------------------------------
    def entries(self) -> list[dict[str, Any]]:
        """Published entries, most recently used first."""
        rows = []
        for e in sorted(self._scan(), key=lambda e: e.last_used, reverse=True):
            rows.append(
                {
                    "kind": e.kind,
                    "hash": e.hash,
                    "path": str(e.content),
                    "size_bytes": e.size,
                    "files": e.meta.get("files"),
                    "source": e.meta.get("source"),
                    "created_at": e.meta.get("created_at"),
                    "last_used_at": _iso(e.last_used),
                }
            )
        return rows

    def size(self) -> int:
        """Bytes held by published entries."""
        return sum(e.size for e in self._scan())

    def prune(self, max_bytes: int | None = None, older_than_s: float | None = None) -> dict[str, int]:
        """Remove stale temp dirs, entries unused for `older_than_s`, then least recently used
        entries until the rest fits in `max_bytes`. An entry whose lock another process holds
        (a download or removal in progress) is kept."""
        if max_bytes is not None and max_bytes < 0:
            raise UsageError("max_bytes must be >= 0")
        freed, temp_removed = self._remove_stale_temp()
        entries = sorted(self._scan(), key=lambda e: e.last_used)
        total = sum(e.size for e in entries)
        now = _clock()
        removed = 0
        for e in entries:
            too_old = older_than_s is not None and now - e.last_used > older_than_s
            too_big = max_bytes is not None and total > max_bytes
            if (too_old or too_big) and self._remove_entry(e):
                removed += 1
                freed += e.size
                total -= e.size
        return {
            "removed": removed,
            "freed_bytes": freed,
            "kept": len(entries) - removed,
            "size_bytes": total,
            "temp_removed": temp_removed,
        }

    def lock_path(self, content_hash: str, kind: str = "dir") -> Path:
        """The lock file of an entry: held while it is downloaded, seeded or removed. Holding it
        also keeps `prune` away from the entry."""
        return self.root / "locks" / f"{_check_kind(kind)}-{_check_hash(content_hash)}.lock"

    # -- internals -------------------------------------------------------------------------------
    def _entry_dir(self, kind: str, content_hash: str) -> Path:
        return self.root / _KIND_DIRS[kind] / content_hash

    def _hit(self, kind: str, content_hash: str) -> Path | None:
        """The published content, touched as used; None when absent or not valid."""
        entry = self._load(kind, self._entry_dir(kind, content_hash))
        if entry is None:
            return None
        now = _clock()
        try:
            os.utime(entry.path / _ENTRY, (now, now))
        except FileNotFoundError:  # pruned a moment ago
            return None
        except PermissionError:  # a cache shared read-only: still a hit, just not recorded
            pass
        return entry.content

    def _load(self, kind: str, path: Path) -> _Entry | None:
        marker = path / _ENTRY
        try:
            meta = json.loads(marker.read_text())
            last_used = marker.stat().st_mtime
        except (OSError, ValueError):
            return None
        if meta.get("hash_function") != HASH_FUNCTIONS[kind] or meta.get("hash") != path.name:
            return None  # written by another hash function: the name means something else
        return _Entry(kind, path.name, path, meta, last_used)

    def _scan(self) -> list[_Entry]:
        found = []
        for kind, sub in _KIND_DIRS.items():
            base = self.root / sub
            if not base.is_dir():
                continue
            for path in base.iterdir():
                if _HASH.match(path.name) and (entry := self._load(kind, path)) is not None:
                    found.append(entry)
        return found

    def _tmp_dir(self, kind: str, content_hash: str) -> Path:
        base = self.root / _KIND_DIRS[kind]
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=base, prefix=f"{_TMP}{content_hash}-"))

    def _publish(
        self, tmp: Path, kind: str, content_hash: str, *, source: str, name: str | None = None
    ) -> _Entry:
        """Verify the content in `tmp`, write its entry.json and rename it into place (lock held)."""
        content = tmp / _CONTENT
        actual = file_sha256(content / name) if name else tree_sha256(content)
        if actual != content_hash:
            raise StorageError(
                f"{source}: the downloaded content hashes to {actual[:12]}…, not the expected "
                f"{content_hash[:12]}…; it was not cached (the stored copy is corrupt or was changed "
                "in place: store it again)"
            )
        files, size = _tree_stats(content)
        meta = {
            "kind": kind,
            "hash": content_hash,
            "hash_function": HASH_FUNCTIONS[kind],
            "source": source,
            "name": name,
            "files": files,
            "size_bytes": size,
            "created_at": _iso(_clock()),
        }
        atomic_write(tmp / _ENTRY, lambda out: out.write(json.dumps(meta, indent=1).encode()))
        now = _clock()
        os.utime(tmp / _ENTRY, (now, now))
        entry = self._entry_dir(kind, content_hash)
        if entry.exists():  # not a valid entry (else _hit would have returned it): move it aside
            self._discard(entry, kind, content_hash)
        os.rename(tmp, entry)
        fsync_dir(entry.parent)
        return _Entry(kind, content_hash, entry, meta, now)

    def _seed(self, kind: str, content_hash: str, src: Path, *, source: str) -> None:
        """Make a local file or folder this machine's entry for `content_hash` (a copy)."""
        if self._hit(kind, content_hash) is not None:
            return
        with self._locked(kind, content_hash):
            if self._hit(kind, content_hash) is not None:
                return
            tmp = self._tmp_dir(kind, content_hash)
            try:
                if kind == "dir":
                    shutil.copytree(src, tmp / _CONTENT)
                    self._publish(tmp, kind, content_hash, source=source)
                else:
                    (tmp / _CONTENT).mkdir()
                    shutil.copy2(src, tmp / _CONTENT / src.name)
                    self._publish(tmp, kind, content_hash, source=source, name=src.name)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

    def _discard(self, path: Path, kind: str, content_hash: str) -> None:
        """Unpublish `path` atomically (rename to a temp name), then delete it."""
        gone = self._tmp_dir(kind, content_hash)
        os.rename(path, gone / "old")
        shutil.rmtree(gone, ignore_errors=True)

    def _remove_entry(self, e: _Entry) -> bool:
        with self._try_lock(e.kind, e.hash) as locked:
            if not locked:
                return False
            current = self._load(e.kind, e.path)
            if current is None or current.last_used != e.last_used:
                return False  # used (or replaced) since the scan: keep it
            self._discard(e.path, e.kind, e.hash)
            return True

    def _remove_stale_temp(self) -> tuple[int, int]:
        """Temp dirs whose entry lock is free belong to no live process: remove them."""
        freed = removed = 0
        for kind, sub in _KIND_DIRS.items():
            base = self.root / sub
            if not base.is_dir():
                continue
            for path in base.iterdir():
                content_hash = path.name[len(_TMP) : len(_TMP) + 64]
                if not (path.name.startswith(_TMP) and _HASH.match(content_hash)):
                    continue
                with self._try_lock(kind, content_hash) as locked:
                    if locked:
                        freed += _tree_stats(path)[1]
                        shutil.rmtree(path, ignore_errors=True)
                        removed += 1
        return freed, removed

    @contextlib.contextmanager
    def _locked(self, kind: str, content_hash: str) -> Iterator[None]:
        from filelock import FileLock, Timeout

        path = self.lock_path(content_hash, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(path), timeout=self.lock_timeout_s):
                yield
        except Timeout:
            raise StorageError(
                f"another process on this machine has held the cache entry {content_hash[:12]}… for "
                f"{self.lock_timeout_s:.0f} s (lock {path}); is a download stuck?"
            ) from None

    @contextlib.contextmanager
    def _try_lock(self, kind: str, content_hash: str) -> Iterator[bool]:
        from filelock import FileLock, Timeout

        path = self.lock_path(content_hash, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    @contextlib.contextmanager
    def _progress(self, description: str, total: int | None) -> Iterator[Progress | None]:
        """A byte-progress callback drawing on stderr, or None when there is nothing to show."""
        show = sys.stderr.isatty() if self.progress is None else self.progress
        if not show or (total is not None and total < _PROGRESS_MIN_BYTES):
            yield None
            return
        from rich.console import Console
        from rich.progress import DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        columns = [TextColumn("{task.description}"), DownloadColumn(), TransferSpeedColumn()]
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)


def read_marker(store: ArtifactStore, prefix: str) -> dict[str, Any] | None:
    """The `.complete` marker of a stored folder, or None when the folder is absent or incomplete."""
    try:
        data = json.loads(store.get_bytes(join_key(prefix, COMPLETE_MARKER)))
    except NotFoundError:
        return None
    except ValueError:
        return None  # unreadable: treat as never completed
    return data if isinstance(data, dict) and isinstance(data.get("content_hash"), str) else None


def _tree_stats(path: Path) -> tuple[int, int]:
    """(files, bytes) below `path` (a file counts as one)."""
    if path.is_file():
        return 1, path.stat().st_size
    files = size = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                size += os.stat(os.path.join(dirpath, name)).st_size
                files += 1
    return files, size


def _check_hash(value: str) -> str:
    if not isinstance(value, str) or not _HASH.match(value):
        raise UsageError(f"content hash {value!r}: expected 64 lowercase hex digits (SHA-256)")
    return value


def _check_kind(kind: str) -> str:
    if kind not in _KIND_DIRS:
        raise UsageError(f"cache entry kind {kind!r}: expected one of {', '.join(_KIND_DIRS)}")
    return kind


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
