"""MetricBuffer: `log_metric` in microseconds, written to MLflow in batches by a background thread.

A training loop logs a metric per step; one synchronous database write per call (what MLflow's
fluent API does by default) costs milliseconds and dominates short steps. Here a call only
appends a tuple to a list under a lock; a daemon thread turns the list into `log_batch` calls of
at most 1000 metrics (MLflow's per-batch limit) every `interval_s` or as soon as a full batch is
pending. `flush()` writes everything synchronously; `close()` flushes and stops the thread.

Failure policy: a batch that fails to write is put back at the front of the queue (order is kept)
and the error is kept. The background thread survives and retries on its next tick; `flush()` and
`close()` re-raise when the data still cannot be written, so nothing is dropped silently.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import TYPE_CHECKING

from shipyard.errors import UsageError

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

MAX_METRICS_PER_BATCH = 1000  # mlflow.utils.validation.MAX_METRICS_PER_BATCH
# MLflow's rule for metric names (checked here so a bad name fails at the call, not at flush).
_VALID_KEY = re.compile(r"^[/\w.\- :]{1,250}$")

# (key, value, timestamp ms, step)
_Entry = tuple[str, float, int, int]


class MetricBuffer:
    """Buffered metric writer for one MLflow run."""

    def __init__(
        self,
        client: MlflowClient,
        run_id: str,
        interval_s: float = 1.0,
        batch_size: int = MAX_METRICS_PER_BATCH,
    ) -> None:
        if not 1 <= batch_size <= MAX_METRICS_PER_BATCH:
            raise ValueError(f"batch_size must be within 1..{MAX_METRICS_PER_BATCH}, got {batch_size}")
        self.client = client
        self.run_id = run_id
        self.interval_s = interval_s
        self.batch_size = batch_size
        self._pending: list[_Entry] = []
        self._lock = threading.Lock()  # guards _pending (held for an append or a swap only)
        self._write_lock = threading.Lock()  # one writer at a time: background thread or flush()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._known_keys: set[str] = set()
        self._closed = False
        self.written = 0  # metrics written to the store so far
        self._thread = threading.Thread(target=self._run, name=f"shipyard-metrics-{run_id[:8]}", daemon=True)
        self._thread.start()

    # -- the hot path ------------------------------------------------------------------------
    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Queue one metric value; returns immediately. `timestamp` is in ms since the epoch."""
        if key not in self._known_keys:
            self._check_key(key)
        entry = (
            key,
            float(value),
            time.time_ns() // 1_000_000 if timestamp is None else int(timestamp),
            0 if step is None else int(step),
        )
        with self._lock:
            if self._closed:
                raise UsageError(f"metric {key!r}: the metric buffer of run {self.run_id} is closed")
            self._pending.append(entry)
            pending = len(self._pending)
        if pending % self.batch_size == 0:
            self._wake.set()  # a full batch is ready: don't wait for the next tick

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Queue several metrics with one shared timestamp."""
        now = time.time_ns() // 1_000_000
        for key, value in metrics.items():
            self.log_metric(key, value, step=step, timestamp=now)

    def _check_key(self, key: str) -> None:
        if not isinstance(key, str) or not _VALID_KEY.match(key) or ".." in key or key.startswith("/"):
            raise UsageError(
                f"invalid metric name {key!r}: use 1-250 letters, digits, '_', '-', '.', ' ', ':' or '/', "
                "not starting with '/' and without '..'"
            )
        self._known_keys.add(key)

    # -- writing -----------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Number of metrics queued and not yet taken by a write (in-flight batches excluded)."""
        with self._lock:
            return len(self._pending)

    def flush(self) -> None:
        """Write every queued metric now; raise if the store refuses them (they stay queued)."""
        self._write()
        # The background thread may have failed earlier and succeeded on retry: then nothing was
        # lost and the old error is history. If data is still pending after an error, _write raised.
        self._error = None

    def close(self) -> None:
        """Flush everything and stop the background thread. Safe to call twice."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        try:
            self.flush()
        finally:
            with self._lock:
                self._closed = True

    def _write(self) -> None:
        from mlflow.entities import Metric

        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            for start in range(0, len(batch), self.batch_size):
                chunk = batch[start : start + self.batch_size]
                metrics = [Metric(k, v, ts, s) for k, v, ts, s in chunk]
                try:
                    self.client.log_batch(self.run_id, metrics=metrics, synchronous=True)
                except BaseException as exc:
                    with self._lock:
                        # Put the unwritten rest back in front of anything logged meanwhile.
                        self._pending[:0] = batch[start:]
                    self._error = exc
                    raise
                self.written += len(chunk)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break  # close() does the final flush in the caller's thread, where errors surface
            try:
                self._write()
            except Exception as exc:
                # Keep the thread alive; flush()/close() will retry and re-raise if it persists.
                log.warning("shipyard: writing metrics of run %s failed, will retry: %s", self.run_id, exc)
                self._stop.wait(self.interval_s)  # back off instead of spinning on a full queue

    @property
    def last_error(self) -> BaseException | None:
        """The most recent write error that has not been cleared by a successful flush."""
        return self._error
