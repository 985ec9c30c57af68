"""Scoring slots: at most N scoring calls at once per worker, a bounded wait for a slot, and a
scoring timeout — Azure ML's maxConcurrentRequestsPerContainer, maxQueueWaitMs, scoringTimeoutMs.

A request that waits longer than the queue wait gets 503 with Retry-After; one whose scoring
outlasts the timeout gets 504. (Python cannot kill the scoring thread: it finishes in the
background and its slot is released only then, so a model that hangs fills the slots and later
requests get 503 rather than piling up.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool


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
    ):
        self.max_concurrent = max_concurrent
        self.max_queue_wait_ms = max_queue_wait_ms
        self.timeout_ms = timeout_ms
        self._free = max_concurrent
        self._cond: asyncio.Condition | None = None
        self.waiting = 0
        self._on_queue = on_queue or (lambda _n: None)

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:  # created in the server's event loop, on first use
            self._cond = asyncio.Condition()
        return self._cond

    async def _acquire(self) -> None:
        cond = self._condition()
        async with cond:
            if self._free > 0:
                self._free -= 1
                return
            self.waiting += 1
            self._on_queue(self.waiting)
            try:
                await asyncio.wait_for(cond.wait_for(lambda: self._free > 0), self.max_queue_wait_ms / 1000)
            except TimeoutError:
                raise Overloaded(self.max_queue_wait_ms) from None
            finally:
                self.waiting -= 1
                self._on_queue(self.waiting)
            self._free -= 1

    async def _release(self) -> None:
        cond = self._condition()
        async with cond:
            self._free += 1
            cond.notify()

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` in a worker thread within a slot and the timeout."""
        await self._acquire()
        task = asyncio.ensure_future(run_in_threadpool(fn, *args))
        task.add_done_callback(lambda _t: asyncio.ensure_future(self._release()))
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.timeout_ms / 1000)
        except TimeoutError:
            raise ScoringTimeout(self.timeout_ms) from None
