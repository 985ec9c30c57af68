"""Data capture files into a shared workspace's artifact store, where every machine can read them.

Local scoring servers write capture files into ``<workspace root>/capture/<endpoint>/``
(serving/capture/collector.py: ``capture-<UTC date-time>-<pid>[-n].jsonl`` or ``.parquet``, rotated). On an
``s3://`` workspace `sync_capture` uploads each *complete* one to
``capture/<endpoint>/<host id>/<file name>`` in the artifact store, then a small sidecar
``<file name>.meta.json`` (size, sha256, endpoint, host, upload time), written last once the object
has been verified: a reader that sees the sidecar finds the whole file. On a ``file://`` workspace
the files are already in the workspace folder, and syncing is a no-op that says so.

A file is complete (its writer will never touch it again) when

- a newer file of the same pid exists: the writer rotated, and never goes back to a file;
- or its writing process is gone (no such pid, or a process that started after the file was
  opened: a reused pid);
- or it has not changed for ``QUIET_S`` and no deployment of its endpoint is live on this host
  and workspace root.

``include_open=True`` takes every file: the caller knows the servers are stopped
(`delete_endpoint`). A Parquet file whose server was killed has no footer and stays unreadable;
it is uploaded as it is.

Verification: a file of up to ``VERIFY_BYTES`` is read back and compared byte for byte; a bigger
one by the stored object's size (a HEAD; the upload itself is checksummed by S3).

The local mark: ``<capture folder>/.uploaded.json`` maps each uploaded file's name to its size,
mtime, sha256 and object URI; it is rewritten atomically after each verified upload, so a crash
loses at most the mark of the file in flight (which is then uploaded again, to the same key).
Local files are never deleted or renamed (local readers keep globbing ``capture-*``). A file whose
size or mtime changed since its upload, or a workspace whose artifact store moved, is uploaded
again. One sync per endpoint folder at a time (a host lock).

Files written to a custom ``serving.capture.folder`` are not seen here; nor are those of
containers and Kubernetes pods, which write to their own disks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.artifacts.store import validate_key
from shipyard.errors import NotFoundError, StorageError, UsageError
from shipyard.names import safe_join
from shipyard.ownership import host_id
from shipyard.processes import process_alive, process_started_at

logger = logging.getLogger("shipyard.deploy.capture_sync")

PREFIX = "capture"
MANIFEST = ".uploaded.json"
SIDECAR = ".meta.json"
QUIET_S = 600.0
VERIFY_BYTES = 4 << 20
_NAME = re.compile(
    r"^capture-(?P<stamp>\d{8}T\d{6}\.\d{6}Z)-(?P<pid>\d+)(?:-(?P<n>\d+))?\.(?P<ext>jsonl|parquet)$"
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class CaptureFile:
    path: Path
    opened: datetime  # the UTC time in its name: when the writer opened it
    pid: int
    n: int  # the "-n" of a name taken twice in the same microsecond

    @property
    def name(self) -> str:
        return self.path.name


def capture_files(folder: Path) -> list[CaptureFile]:
    """The capture files in `folder`, oldest first (other names are ignored)."""
    out = []
    if folder.is_dir():
        for path in folder.iterdir():
            m = _NAME.match(path.name)
            if m and path.is_file():
                opened = datetime.strptime(m["stamp"], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
                out.append(CaptureFile(path, opened, int(m["pid"]), int(m["n"] or 0)))
    return sorted(out, key=lambda f: (f.opened, f.n, f.pid))


def host_segment() -> str:
    """This host's id as one key segment (anything but letters, digits, '.', '_', '-' → '_')."""
    value = _UNSAFE.sub("_", host_id())
    return value if value.strip(".") else "_"


def capture_root(ws: Any) -> Path:
    return Path(ws.root) / PREFIX


def endpoint_folder(ws: Any, endpoint: str) -> Path:
    """An endpoint's capture folder (never outside the capture root, whatever the name)."""
    return safe_join(capture_root(ws), endpoint)


# -- completeness ------------------------------------------------------------------------------
def _writer_alive(f: CaptureFile) -> bool:
    """Is the process that opened `f` still running? A live pid that started after the file was
    opened is another process (pid reuse); boot time has 1 s steps, hence the margin."""
    if not process_alive(f.pid):
        return False
    started = process_started_at(f.pid)
    return started is None or started <= f.opened.timestamp() + 1.0


def _server_live_here(ws: Any, endpoint: str) -> bool:
    """Does the endpoint have a live (or starting) deployment owned by this host and root?"""
    from sqlalchemy import select

    from shipyard.deploy.endpoints import LIVE_STATES
    from shipyard.ownership import owned_here
    from shipyard.store.models import DeploymentRow

    with ws.store.session() as s:
        rows = list(
            s.scalars(
                select(DeploymentRow).where(
                    DeploymentRow.endpoint == endpoint,
                    DeploymentRow.state.in_((*LIVE_STATES, "starting")),
                )
            )
        )
        return any(owned_here(ws.root, r) for r in rows)


def complete_files(
    ws: Any, endpoint: str, files: list[CaptureFile], quiet_s: float = QUIET_S
) -> tuple[list[CaptureFile], list[CaptureFile]]:
    """(complete, open) among `files` (one endpoint's, oldest first), by the rules above."""
    newest: dict[int, CaptureFile] = {}
    for f in files:
        newest[f.pid] = f  # oldest first: the last one wins
    live: bool | None = None
    done: list[CaptureFile] = []
    still_open: list[CaptureFile] = []
    now = time.time()
    for f in files:
        if newest[f.pid] is not f or not _writer_alive(f):
            done.append(f)
            continue
        try:
            quiet = now - f.path.stat().st_mtime >= quiet_s
        except FileNotFoundError:
            continue
        if quiet and live is None:
            live = _server_live_here(ws, endpoint)
        (done if quiet and not live else still_open).append(f)
    return done, still_open


# -- the local mark ----------------------------------------------------------------------------
def _load_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        logger.warning("capture sync: %s is unreadable; its files are uploaded again", folder / MANIFEST)
        return {}
    return data.get("files", {}) if isinstance(data, dict) else {}


def _save_manifest(folder: Path, files: dict[str, dict[str, Any]]) -> None:
    from shipyard.artifacts.file_store import atomic_write

    present = {name: entry for name, entry in files.items() if (folder / name).exists()}
    body = json.dumps({"version": 1, "files": present}, indent=1, sort_keys=True).encode()
    atomic_write(folder / MANIFEST, lambda out: out.write(body))


def _digest(path: Path) -> tuple[int, str]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as src:
        while chunk := src.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


# -- upload and verify -------------------------------------------------------------------------
def _verify(store: Any, key: str, path: Path, size: int, sha256: str) -> None:
    """StorageError unless the object `key` holds what `path` held: the bytes themselves up to
    VERIFY_BYTES, the stored size above."""
    where = store.uri(key)
    if size > VERIFY_BYTES:
        stored = store.size(key)
        if stored != size:
            raise StorageError(f"{where}: stored {stored} bytes, the file {path} has {size}; not marked")
        return
    data = store.get_bytes(key)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise StorageError(
            f"{where}: the stored object ({len(data)} bytes) differs from {path} ({size} bytes); not marked"
        )


def _key(endpoint: str, host: str, name: str) -> str:
    return validate_key(f"{PREFIX}/{endpoint}/{host}/{name}")


def _upload(store: Any, endpoint: str, host: str, f: CaptureFile) -> dict[str, Any]:
    """Upload one file and its sidecar; the manifest entry for it."""
    stat = f.path.stat()
    size, sha256 = _digest(f.path)
    key = _key(endpoint, host, f.name)
    store.put_file(f.path, key)
    _verify(store, key, f.path, size, sha256)
    if f.path.stat().st_mtime_ns != stat.st_mtime_ns:  # written to while it was uploaded
        raise StorageError(f"{f.path} changed while it was uploaded; run the sync again once it is complete")
    uploaded_at = datetime.now(UTC).isoformat(timespec="seconds")
    meta = {
        "endpoint": endpoint,
        "host": host,
        "file": f.name,
        "size": size,
        "sha256": sha256,
        "pid": f.pid,
        "opened_at": f.opened.isoformat(),
        "uploaded_at": uploaded_at,
    }
    store.put_bytes(json.dumps(meta, indent=1).encode() + b"\n", key + SIDECAR)
    return {
        "size": size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": sha256,
        "uri": store.uri(key),
        "uploaded_at": uploaded_at,
    }


def _check_endpoint(endpoint: str) -> str:
    validate_key(endpoint, what="endpoint name")
    if "/" in endpoint:
        raise UsageError(f"endpoint {endpoint!r}: one name, without '/'")
    return endpoint


def _endpoints(ws: Any, endpoint: str | None) -> list[str]:
    """The endpoint given, or every endpoint with a capture folder here."""
    if endpoint is not None:
        return [_check_endpoint(endpoint)]
    root = capture_root(ws)
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def sync_capture(
    ws: Any, endpoint: str | None = None, *, include_open: bool = False, quiet_s: float = QUIET_S
) -> dict[str, Any]:
    """Upload every complete capture file of `endpoint` (None: of every endpoint with a capture
    folder here) not uploaded yet; returns {"uploaded", "bytes", "skipped_open", "already", ...}.

    A store that cannot be reached raises its StorageError (files uploaded before stay marked);
    a file:// workspace is a no-op (``note`` says why)."""
    result: dict[str, Any] = {"uploaded": 0, "bytes": 0, "skipped_open": 0, "already": 0}
    if ws.local_artifacts:
        where = capture_root(ws)
        return result | {
            "note": f"file:// workspace: capture files are already in the workspace ({where}); "
            "nothing to upload"
        }
    store = ws.artifacts
    host = host_segment()
    names = _endpoints(ws, endpoint)
    result |= {"store": store.uri(PREFIX), "host": host, "files": []}
    for name in names:
        folder = endpoint_folder(ws, name)
        files = capture_files(folder)
        if not files:
            continue
        with ws.host_lock(f"capture-sync-{name}"):
            manifest = _load_manifest(folder)
            done, still_open = (files, []) if include_open else complete_files(ws, name, files, quiet_s)
            result["skipped_open"] += len(still_open)
            for f in done:
                try:
                    stat = f.path.stat()
                except FileNotFoundError:  # removed meanwhile
                    continue
                entry = manifest.get(f.name)
                if (
                    entry
                    and entry.get("size") == stat.st_size
                    and entry.get("mtime_ns") == stat.st_mtime_ns
                    and entry.get("uri") == store.uri(_key(name, host, f.name))
                ):
                    result["already"] += 1
                    continue
                manifest[f.name] = entry = _upload(store, name, host, f)
                _save_manifest(folder, manifest)
                result["uploaded"] += 1
                result["bytes"] += entry["size"]
                result["files"].append(entry["uri"])
    return result


def sync_after_delete(ws: Any, endpoint: str) -> None:
    """`delete_endpoint`'s last step: its servers are stopped, so every file of the endpoint is
    complete. Never raises: a failure is a warning (the next `shipyard endpoints capture sync`
    uploads what is left)."""
    try:
        if ws.local_artifacts or not capture_files(endpoint_folder(ws, endpoint)):
            return
        done = sync_capture(ws, endpoint, include_open=True)
        if done["uploaded"]:
            logger.info("endpoint %s: uploaded %d capture file(s)", endpoint, done["uploaded"])
    except Exception as exc:  # noqa: BLE001 - the delete itself succeeded
        logger.warning(
            "endpoint %s: its capture files were not all uploaded (%s); run `shipyard endpoints capture "
            "sync %s` once the artifact store is reachable",
            endpoint,
            exc,
            endpoint,
        )


# -- listing -----------------------------------------------------------------------------------
def list_capture(ws: Any, endpoint: str | None = None) -> list[dict[str, Any]]:
    """Capture files of the workspace: in the artifact store (s3://: every host's, with size and
    hash from the sidecar; ``complete`` False for an object whose sidecar is not there yet), or in
    the local capture folders (file://: this host's)."""
    if endpoint is not None:
        _check_endpoint(endpoint)
    if ws.local_artifacts:
        rows = []
        for name in _endpoints(ws, endpoint):
            for f in capture_files(endpoint_folder(ws, name)):
                stat = f.path.stat()
                rows.append(
                    {
                        "endpoint": name,
                        "host": host_segment(),
                        "file": f.name,
                        "size": stat.st_size,
                        "sha256": None,
                        "uploaded_at": None,
                        "complete": None,
                        "uri": str(f.path),
                    }
                )
        return rows
    store = ws.artifacts
    keys = store.list(f"{PREFIX}/{endpoint}" if endpoint else PREFIX)
    present = set(keys)
    objects = [
        k for k in keys if not k.endswith(SIDECAR) and len(k.split("/")) == 4 and k.split("/")[0] == PREFIX
    ]

    def row(key: str) -> dict[str, Any]:
        _, ep, host, name = key.split("/")
        meta: dict[str, Any] = {}
        if key + SIDECAR in present:
            try:
                meta = json.loads(store.get_bytes(key + SIDECAR))
            except (NotFoundError, ValueError):
                meta = {}
        return {
            "endpoint": ep,
            "host": host,
            "file": name,
            "size": meta.get("size"),
            "sha256": meta.get("sha256"),
            "uploaded_at": meta.get("uploaded_at"),
            "complete": bool(meta),
            "uri": store.uri(key),
        }

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(row, objects))
