"""Scoring slots: at most N scoring calls at once per worker, a bounded wait for a slot, and a
scoring timeout — Azure ML's maxConcurrentRequestsPerContainer, maxQueueWaitMs, scoringTimeoutMs.

Each slot is a thread of a dedicated executor (not the event loop's shared 40-thread pool: for
CPU-bound models in Python more threads only fight over the GIL, which the benchmark showed as
p99 spikes). Waiting requests get slots first come, first served; one that waits longer than the
queue wait gets 503 with Retry-After, one whose scoring outlasts the timeout gets 504. (Python
cannot kill the scoring thread: it finishes in the background and its slot is released only
then, so a model that hangs fills the slots and later requests get 503 rather than piling up.)

Fast models are scored on the event loop instead, with a SIGALRM timeout: see inline.py.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shipyard.serving.server.inline import Deadline, InlinePolicy


class Overloaded(Exception):
    """No scoring slot within the queue wait (503)."""

    def __init__(self, waited_ms: float, retry_after_s: int = 1):
        super().__init__(f"the server is busy: no scoring slot within {waited_ms:g} ms; retry later")
        self.retry_after_s = retry_after_s


class ScoringTimeout(Exception):
    """Scoring took longer than the timeout (504)."""

    def __init__(self, timeout_ms: float):
        super().__init__(f"scoring took longer than {timeout_ms:g} ms (scoring_timeout_ms)")


class ScoringSlots:
    def __init__(
        self,
        max_concurrent: int,
        max_queue_wait_ms: float,
        timeout_ms: float,
        on_queue: Callable[[int], None] | None = None,
        inline_below_ms: float = 0,
        on_call: Callable[[str], None] | None = None,
    ):
        self.max_concurrent = max_concurrent
        self.max_queue_wait_ms = max_queue_wait_ms
        self.timeout_ms = timeout_ms
        self._free = max_concurrent
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._on_queue = on_queue or (lambda _n: None)
        self._on_call = on_call or (lambda _where: None)  # "inline" or "thread", once per call
        self._executor = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="shipyard-score")
        self._inline = InlinePolicy(inline_below_ms, timeout_ms, enabled=max_concurrent == 1)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def _acquire(self) -> None:
        if self._free > 0 and not self._waiters:  # fast path, and fair: nobody is ahead
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._on_queue(len(self._waiters))
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.max_queue_wait_ms / 1000)
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return  # handed a slot just as the wait ran out: keep it
            waiter.cancel()
            raise Overloaded(self.max_queue_wait_ms) from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            self._on_queue(len(self._waiters))

    def _release(self, _future: Any = None) -> None:
        # Hand the slot straight to the oldest live waiter (FIFO), else free it.
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    def _call_inline(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return self._inline.run(fn, *args)
        except Deadline:
            raise ScoringTimeout(self.timeout_ms) from None
        finally:
            self._release()

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` within a slot and the timeout: inline when that is cheaper, else on a
        scoring thread."""
        await self._acquire()
        if self._inline.next_inline():
            self._on_call("inline")
            return self._call_inline(fn, *args)
        self._on_call("thread")
        loop = asyncio.get_running_loop()
        # One future and one timer per call, where run_in_executor + wait_for + shield made
        # four futures, a task and their callbacks: this runs for every request (or batch).
        outcome: asyncio.Future[Any] = loop.create_future()
        try:
            # contextvars travel with the call (the request id for print() lines from run()).
            work = self._executor.submit(contextvars.copy_context().run, fn, *args)
        except BaseException:
            self._release()
            raise
        work.add_done_callback(functools.partial(self._finished, loop, outcome))
        timer = loop.call_later(self.timeout_ms / 1000, self._expire, outcome)
        try:
            return await outcome
        finally:
            timer.cancel()

    def _finished(self, loop: asyncio.AbstractEventLoop, outcome: asyncio.Future[Any], work: Any) -> None:
        # In the scoring thread: hand the outcome to the event loop (gone at shutdown: nothing to do).
        try:
            loop.call_soon_threadsafe(self._settle, work, outcome)
        except RuntimeError:
            pass

    def _settle(self, work: Any, outcome: asyncio.Future[Any]) -> None:
        # The slot is freed when the call ends, even past the timeout (the thread was busy).
        self._release()
        if outcome.done():  # timed out, or the caller went away
            return
        if work.cancelled():
            outcome.cancel()
        elif work.exception() is not None:
            outcome.set_exception(work.exception())
        else:
            outcome.set_result(work.result())

    def _expire(self, outcome: asyncio.Future[Any]) -> None:
        if not outcome.done():
            outcome.set_exception(ScoringTimeout(self.timeout_ms))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
