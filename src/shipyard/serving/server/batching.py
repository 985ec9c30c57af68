"""Adaptive micro-batching: the rows of concurrent requests share one model call.

`MicroBatcher.submit(rows)` queues a request's rows and waits for its own predictions. Batches
are formed in arrival order, in one event loop, without a background task or polling:

- when no batch is being scored (the scorer is idle), what is waiting is dispatched at once:
  only the requests that arrived in the same event-loop turn are stacked, no latency is added;
- while batches are being scored, requests accumulate until they fill ``max_batch_size`` rows
  or until ``max_latency_ms`` after the oldest waiting request arrived, whichever comes first;
  when the scorer goes idle again, what has accumulated is dispatched at once;
- ``max_concurrent_batches`` (default: no limit here; ``run_sync``, e.g. the server's scoring
  slots, bounds the concurrency) caps the batches being scored at once; past it, requests wait
  for a batch to finish and the batch keeps filling meanwhile;
- a request with more rows than ``max_batch_size`` is scored on its own, never split.

The stacked rows go to one ``predict_rows(rows)`` call, run through ``run_sync`` (default: a
worker thread), and the predictions are split back: each caller gets exactly its own, in order.

Failures: when the model call raises, or returns a number of predictions other than the number
of rows (`PredictionShapeError`), each request of the batch is scored again *on its own*, so a
request the model cannot score fails alone and the others get their predictions (the model is
then called once more per request: fine for pure models, worth knowing for ones with side
effects). A batch of one request is not retried. Errors raised by ``run_sync`` itself, not by the
model (the server's ``Overloaded``/``ScoringTimeout``, cancellation), are not retried: every
caller of the batch gets them.

A caller that goes away (cancelled, e.g. by a timeout or a client disconnect) is taken out of
the queue if its batch has not started; if it has, the batch runs on and its share is discarded.
Other callers are not affected either way.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shipyard.serving.servable import check_predictions

logger = logging.getLogger("shipyard.serving.batching")

RunSync = Callable[[Callable[[list[Any]], Any], list[Any]], Awaitable[Any]]


@dataclass(eq=False)
class _Request:
    rows: list[Any]
    future: asyncio.Future[list[Any]]
    arrived: float
    taken: bool = False  # part of a batch (no longer in the queue's row count)
    cancelled: bool = False


@dataclass(eq=False)
class _Failure:
    """The model's exception, carried back from the worker thread as a value."""

    error: BaseException


@dataclass
class BatchStats:
    """What the batcher has done so far."""

    requests: int = 0
    batches: int = 0
    rows: int = 0
    retried_batches: int = 0


class MicroBatcher:
    """Stacks the rows of concurrent `submit` calls into one ``predict_rows`` call."""

    def __init__(
        self,
        predict_rows: Callable[[list[Any]], list[Any]],
        *,
        max_batch_size: int,
        max_latency_ms: float,
        run_sync: RunSync | None = None,
        on_batch: Callable[[int], None] | None = None,
        max_concurrent_batches: int | None = None,
    ) -> None:
        """`predict_rows`: rows in, one prediction per row out (the `Servable` contract).

        `run_sync(fn, rows)` runs the model call off the event loop (default: Starlette's
        thread pool). `on_batch(n_rows)` is called before each model call, retries included.
        """
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_latency_ms < 0:
            raise ValueError(f"max_latency_ms must not be negative, got {max_latency_ms}")
        if max_concurrent_batches is not None and max_concurrent_batches < 1:
            raise ValueError(f"max_concurrent_batches must be at least 1, got {max_concurrent_batches}")
        if run_sync is None:
            from starlette.concurrency import run_in_threadpool

            run_sync = run_in_threadpool
        self.predict_rows = predict_rows
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_ms / 1000
        self.max_concurrent_batches = max_concurrent_batches
        self.stats = BatchStats()
        self._run_sync = run_sync
        self._on_batch = on_batch
        self._queue: deque[_Request] = deque()
        self._queued_rows = 0
        self._in_flight = 0
        self._wakeup_pending = False
        self._timer: asyncio.Handle | None = None
        self._timer_deadline = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- public -----------------------------------------------------------------------------
    @property
    def queued_rows(self) -> int:
        """Rows waiting for a batch."""
        return self._queued_rows

    @property
    def in_flight(self) -> int:
        """Batches being scored."""
        return self._in_flight

    async def submit(self, rows: list[Any]) -> list[Any]:
        """Score `rows` (in a batch shared with concurrent callers); one prediction per row."""
        if self._closed:
            raise RuntimeError("the micro-batcher is closed")
        rows = list(rows)
        if not rows:
            return []
        loop = asyncio.get_running_loop()
        request = _Request(rows, loop.create_future(), loop.time())
        self._queue.append(request)
        self._queued_rows += len(rows)
        self.stats.requests += 1
        self._wake(loop)
        try:
            return await request.future
        except asyncio.CancelledError:
            if not request.taken and not request.cancelled:
                request.cancelled = True
                self._queued_rows -= len(rows)
            request.future.cancel()
            raise

    async def aclose(self) -> None:
        """Refuse new requests and wait until the queued and running batches are done."""
        self._closed = True
        while self._queue or self._tasks:
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            else:
                # Queued but not dispatched (waiting on the latency timer): dispatch now.
                self._dispatch(force=True)
                await asyncio.sleep(0)

    # -- dispatch ---------------------------------------------------------------------------
    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        # Decide on the next loop turn, so that requests arriving together are stacked together.
        if not self._wakeup_pending:
            self._wakeup_pending = True
            loop.call_soon(self._on_wakeup)

    def _on_wakeup(self) -> None:
        self._wakeup_pending = False
        self._dispatch()

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch()

    def _prune(self) -> None:
        while self._queue and self._queue[0].cancelled:
            self._queue.popleft()

    def _dispatch(self, force: bool = False) -> None:
        loop = asyncio.get_running_loop()
        self._prune()
        while self._queue:
            if self.max_concurrent_batches is not None and self._in_flight >= self.max_concurrent_batches:
                break  # a finishing batch wakes us; the queue keeps filling meanwhile
            if not force and self._in_flight > 0 and self._queued_rows < self.max_batch_size:
                deadline = self._queue[0].arrived + self.max_latency_s
                if loop.time() < deadline:
                    self._arm_timer(loop, deadline)
                    return
            batch = self._take_batch()
            if not batch:
                break
            self._in_flight += 1
            task = loop.create_task(self._score(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            self._prune()
        if not self._queue and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm_timer(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        # The deadline is kept here, not read back with TimerHandle.when(): uvloop's call_at
        # returns a plain Handle (no when()) for a deadline it rounds to now.
        if self._timer is not None:
            if self._timer_deadline <= deadline:
                return
            self._timer.cancel()
        self._timer = loop.call_at(deadline, self._on_timer)
        self._timer_deadline = deadline

    def _take_batch(self) -> list[_Request]:
        batch: list[_Request] = []
        size = 0
        while self._queue:
            head = self._queue[0]
            if head.cancelled:
                self._queue.popleft()
                continue
            if batch and size + len(head.rows) > self.max_batch_size:
                break
            self._queue.popleft()
            head.taken = True
            self._queued_rows -= len(head.rows)
            batch.append(head)
            size += len(head.rows)
            if size >= self.max_batch_size:
                break
        return batch

    # -- scoring ----------------------------------------------------------------------------
    def _guarded(self, rows: list[Any]) -> list[Any] | _Failure:
        # Runs in the worker thread: the model's own errors come back as values, so that they
        # can be told apart from run_sync's (timeouts, overload), which are not retried.
        try:
            return check_predictions(rows, self.predict_rows(rows))
        except Exception as exc:
            return _Failure(exc)

    async def _call(self, rows: list[Any]) -> list[Any] | _Failure:
        self.stats.batches += 1
        self.stats.rows += len(rows)
        if self._on_batch is not None:
            try:
                self._on_batch(len(rows))
            except Exception:  # metrics must never fail scoring
                logger.exception("on_batch failed")
        return await self._run_sync(self._guarded, rows)

    async def _score(self, batch: list[_Request]) -> None:
        try:
            live = [r for r in batch if not r.future.done()]
            if not live:
                return
            rows = [row for r in live for row in r.rows]
            try:
                outcome = await self._call(rows)
            except Exception as exc:
                for r in live:
                    _fail(r, exc)
                return
            if not isinstance(outcome, _Failure):
                start = 0
                for r in live:
                    end = start + len(r.rows)
                    if not r.future.done():
                        r.future.set_result(outcome[start:end])
                    start = end
                return
            if len(live) == 1:
                _fail(live[0], outcome.error)
                return
            # One request may be what the model cannot score: give each its own call.
            self.stats.retried_batches += 1
            for r in live:
                if r.future.done():  # the caller went away meanwhile
                    continue
                try:
                    alone = await self._call(r.rows)
                except Exception as exc:
                    _fail(r, exc)
                    continue
                if isinstance(alone, _Failure):
                    _fail(r, alone.error)
                elif not r.future.done():
                    r.future.set_result(alone)
        except asyncio.CancelledError:
            for r in batch:
                r.future.cancel()
            raise
        finally:
            self._in_flight -= 1
            # The scorer has room again: what accumulated goes now.
            if self._queue:
                self._wake(asyncio.get_running_loop())


def _fail(request: _Request, error: BaseException) -> None:
    if not request.future.done():
        request.future.set_exception(error)
