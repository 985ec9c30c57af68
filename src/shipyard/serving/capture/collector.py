"""Data capture: the inputs and outputs of sampled requests, appended to rotating JSONL (or Parquet) files.

The local counterpart of Azure ML's ModelDataCollector. The request path only samples and puts
the record on a bounded queue (``put_nowait``: when the queue is full the record is dropped and
counted, the request never waits); a daemon thread serializes the records (orjson, numpy-safe)
and appends one JSON line each::

    {"timestamp": "2024-05-01T12:00:00.123456+00:00", "request_id": "...", "inputs": ..., "outputs": ...}

to ``<folder>/capture-<UTC date-time>-<pid>.jsonl``, starting a new file once the current one is
past ``max_file_mb``. The pid in the name keeps the files of several worker processes apart.
With ``file_format="parquet"`` the same records go to ``.parquet`` files, inputs and outputs as
JSON text columns (parquet.py says why, and when such a file becomes readable).
Objects handed to `DataCapture.capture` are serialized later, on the writer thread: callers must
not mutate them afterwards (request payloads and model results are not).
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # pyarrow is imported only when Parquet capture is on
    from shipyard.serving.capture.parquet import ParquetFile

import orjson

logger = logging.getLogger("shipyard.serving.capture")

_STOP = object()
# Records taken off the queue and written in one go (one write and one flush per batch).
_WRITE_BATCH = 512


def _default(obj: Any) -> Any:
    # What OPT_SERIALIZE_NUMPY does not cover: non-contiguous arrays, exotic scalars, bytes.
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj).decode("utf-8", errors="replace")
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    return repr(obj)


class DataCapture:
    """Samples requests and writes their inputs and outputs to JSONL files, off the request path.

    Counters: `captured` (records written), `dropped` (sampled records lost: queue full, capture
    after `close`, or a record that could not be serialized or written), `skipped` (not sampled).

    `write_lock` is held by the writer thread while it writes to a file: whoever holds it pauses
    the writer (e.g. to copy or ship the files consistently); records keep being queued meanwhile,
    and dropped once the queue is full.
    """

    def __init__(
        self,
        folder: Path | str,
        sample_rate: float = 1.0,
        max_file_mb: float = 64,
        *,
        queue_size: int = 10_000,
        file_format: str = "jsonl",
    ) -> None:
        if file_format not in ("jsonl", "parquet"):
            raise ValueError(f"file_format must be jsonl or parquet, got {file_format!r}")
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be between 0 and 1, got {sample_rate}")
        if max_file_mb <= 0:
            raise ValueError(f"max_file_mb must be positive, got {max_file_mb}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.folder = Path(folder)
        self.sample_rate = sample_rate
        self.max_file_bytes = max(1, int(max_file_mb * 1024 * 1024))
        self.queue_size = queue_size
        self.file_format = file_format
        self.captured = 0
        self.dropped = 0
        self.skipped = 0
        self.files: list[Path] = []
        self.write_lock = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._counts = threading.Lock()  # held for an increment only
        self._closed = False
        self._file: IO[bytes] | ParquetFile | None = None
        self._file_bytes = 0
        self._warned = False
        self._thread = threading.Thread(target=self._run, name="shipyard-data-capture", daemon=True)
        self._thread.start()

    # -- request path -----------------------------------------------------------------------
    def capture(self, request_id: str, inputs: Any, outputs: Any) -> None:
        """Queue one request's inputs and outputs if it is sampled; never blocks."""
        if self.sample_rate < 1.0 and random.random() >= self.sample_rate:
            self._count("skipped")
            return
        if self._closed:
            self._count("dropped")
            return
        record = (datetime.now(UTC).isoformat(timespec="microseconds"), request_id, inputs, outputs)
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._count("dropped")

    @property
    def pending(self) -> int:
        """Records queued and not yet taken by the writer."""
        return self._queue.qsize()

    # -- shutdown ---------------------------------------------------------------------------
    def close(self, timeout: float | None = 10.0) -> bool:
        """Write everything queued, close the file and stop the writer thread.

        Returns True when all was written within `timeout` seconds (None: wait as long as it
        takes). Records captured after `close` are dropped. Calling it again does no harm.
        """
        if not self._closed:
            self._closed = True
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                logger.warning("data capture: the writer did not catch up within %s s", timeout)
                return False
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        # Records that raced with close() and landed behind the stop marker.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                self._count("dropped")
        return True

    # -- writer thread ----------------------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        with self._counts:
            setattr(self, name, getattr(self, name) + n)

    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while len(batch) < _WRITE_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if any(item is _STOP for item in batch):
                stop = True
                batch = [item for item in batch if item is not _STOP]
            if batch:
                self._write(batch)
        self._close_file()

    def _write(self, batch: list[tuple[str, str, Any, Any]]) -> None:
        parquet = self.file_format == "parquet"
        option = orjson.OPT_SERIALIZE_NUMPY | (0 if parquet else orjson.OPT_APPEND_NEWLINE)
        encoded: list[Any] = []
        for timestamp, request_id, inputs, outputs in batch:
            try:
                if parquet:
                    pair = [orjson.dumps(v, default=_default, option=option) for v in (inputs, outputs)]
                    encoded.append((timestamp, request_id, *pair))
                else:
                    record = {
                        "timestamp": timestamp,
                        "request_id": request_id,
                        "inputs": inputs,
                        "outputs": outputs,
                    }
                    encoded.append(orjson.dumps(record, default=_default, option=option))
            except (TypeError, orjson.JSONEncodeError) as exc:
                self._count("dropped")
                self._warn(f"a record of request {request_id} cannot be written as JSON: {exc}")
        if not encoded:
            return
        with self.write_lock:
            # JSONL: a write per line, so a file rotates within a batch; Parquet: a row group per batch.
            chunks = [encoded] if parquet else [[line] for line in encoded]
            for chunk in chunks:
                try:
                    if self._file is None or self._file_bytes >= self.max_file_bytes:
                        self._open_next()
                    assert self._file is not None
                    # _open_next opened the file of this format: a ParquetFile, or a binary stream
                    if parquet:
                        self._file_bytes += cast("ParquetFile", self._file).write(chunk)
                    else:
                        self._file_bytes += cast("IO[bytes]", self._file).write(chunk[0])
                    self._count("captured", len(chunk))
                except OSError as exc:
                    self._count("dropped", len(chunk))
                    self._warn(f"cannot write to {self.folder}: {exc}")
                    self._close_file()
            if self._file is not None:
                try:
                    self._file.flush()
                except OSError as exc:
                    self._warn(f"cannot write to {self.folder}: {exc}")
                    self._close_file()

    def _open_next(self) -> None:
        self._close_file()
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        pid = os.getpid()
        suffix = self.file_format
        path = self.folder / f"capture-{stamp}-{pid}.{suffix}"
        n = 0
        while True:
            try:
                # "x": never append to, or clobber, another writer's file.
                if suffix == "parquet":
                    from shipyard.serving.capture.parquet import ParquetFile

                    self._file = ParquetFile(path)
                else:
                    self._file = open(path, "xb")  # noqa: SIM115 - kept open across batches
                break
            except FileExistsError:
                n += 1
                path = self.folder / f"capture-{stamp}-{pid}-{n}.{suffix}"
        self._file_bytes = 0
        self.files.append(path)

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                self._warn(f"cannot close a capture file in {self.folder}: {exc}")
            self._file = None

    def _warn(self, message: str) -> None:
        # Once: a full disk would otherwise log a line per record.
        if not self._warned:
            self._warned = True
            logger.warning("data capture: %s (further errors are counted in `dropped`)", message)
