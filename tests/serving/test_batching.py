"""MicroBatcher with real coroutines and real worker threads: every caller gets its own
predictions, batches stay within their size, a bad request fails alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipyard.serving.servable import PredictionShapeError
from shipyard.serving.server.batching import MicroBatcher


class SumModel:
    """predict_rows = one sum per row; records the size of every call (called in worker threads)."""

    def __init__(self, bad: Callable[[list[Any]], bool] | None = None) -> None:
        self.sizes: list[int] = []
        self.bad = bad
        self._lock = threading.Lock()

    def predict_rows(self, rows: list[Any]) -> list[Any]:
        with self._lock:
            self.sizes.append(len(rows))
        if self.bad is not None and any(self.bad(row) for row in rows):
            raise ValueError("negative input")
        return [sum(row) for row in rows]


def test_64_concurrent_callers_each_get_their_own_results() -> None:
    model = SumModel()
    batch_sizes: list[int] = []

    async def main() -> list[list[float]]:
        batcher = MicroBatcher(
            model.predict_rows, max_batch_size=8, max_latency_ms=5, on_batch=batch_sizes.append
        )
        return await asyncio.gather(*(batcher.submit([[i, i + 0.5]]) for i in range(64)))

    results = asyncio.run(main())
    assert results == [[i + i + 0.5] for i in range(64)]
    assert sum(model.sizes) == 64
    assert max(model.sizes) <= 8
    assert any(size > 1 for size in model.sizes)  # requests were stacked
    assert len(model.sizes) < 64
    assert batch_sizes == model.sizes  # on_batch saw every model call


def test_callers_with_several_rows_get_their_rows_in_order() -> None:
    model = SumModel()

    async def main() -> list[list[float]]:
        batcher = MicroBatcher(model.predict_rows, max_batch_size=10, max_latency_ms=5)
        requests = [[[i, j] for j in range(1 + i % 4)] for i in range(40)]
        return await asyncio.gather(*(batcher.submit(rows) for rows in requests))

    results = asyncio.run(main())
    assert results == [[i + j for j in range(1 + i % 4)] for i in range(40)]
    assert max(model.sizes) <= 10
    assert sum(model.sizes) == sum(1 + i % 4 for i in range(40))


def test_a_request_larger_than_the_batch_is_scored_alone() -> None:
    model = SumModel()

    async def main() -> tuple[list[float], list[float], list[float]]:
        batcher = MicroBatcher(model.predict_rows, max_batch_size=4, max_latency_ms=5)
        return await asyncio.gather(
            batcher.submit([[1]]),
            batcher.submit([[k] for k in range(10)]),
            batcher.submit([[2]]),
        )

    small, big, other = asyncio.run(main())
    assert (small, other) == ([1], [2])
    assert big == list(range(10))
    assert model.sizes.count(10) == 1  # one call with exactly its 10 rows, nothing stacked onto it
    assert sum(model.sizes) == 12
    assert all(size <= 4 for size in model.sizes if size != 10)


def test_a_failing_row_poisons_only_its_own_request() -> None:
    model = SumModel(bad=lambda row: row[0] < 0)

    async def main() -> list[Any]:
        batcher = MicroBatcher(model.predict_rows, max_batch_size=16, max_latency_ms=5)
        inputs = [[[-1.0, 0.0]] if i == 5 else [[i, 1.0]] for i in range(12)]
        return await asyncio.gather(*(batcher.submit(rows) for rows in inputs), return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[5], ValueError) and str(results[5]) == "negative input"
    for i, result in enumerate(results):
        if i != 5:
            assert result == [i + 1.0]
    assert any(size > 1 for size in model.sizes)  # the failing batch was a shared one


def test_a_wrong_number_of_predictions_is_an_error_for_its_callers() -> None:
    def short(rows: list[Any]) -> list[Any]:
        return [0.0] * (len(rows) - 1)

    async def main() -> list[Any]:
        batcher = MicroBatcher(short, max_batch_size=8, max_latency_ms=5)
        return await asyncio.gather(*(batcher.submit([[i]]) for i in range(5)), return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, PredictionShapeError) for r in results)
    assert "for 1 rows" in str(results[0])  # each was retried alone, and still wrong


def test_errors_of_run_sync_are_not_retried() -> None:
    model = SumModel()

    class Overloaded(Exception):
        pass

    async def refuse(fn: Callable, rows: list) -> Any:
        raise Overloaded("no slot")

    async def main() -> list[Any]:
        batcher = MicroBatcher(model.predict_rows, max_batch_size=8, max_latency_ms=5, run_sync=refuse)
        return await asyncio.gather(*(batcher.submit([[i]]) for i in range(6)), return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, Overloaded) for r in results)
    assert model.sizes == []


def test_requests_accumulate_while_a_batch_is_scored() -> None:
    release = threading.Event()
    first_started = threading.Event()
    model_sizes: list[int] = []

    def slow_first(rows: list[Any]) -> list[Any]:
        model_sizes.append(len(rows))
        if len(model_sizes) == 1:
            first_started.set()
            release.wait(10)
        return [row[0] * 10 for row in rows]

    async def main() -> tuple[list, list]:
        batcher = MicroBatcher(slow_first, max_batch_size=32, max_latency_ms=10_000, max_concurrent_batches=1)
        first = asyncio.ensure_future(batcher.submit([[1]]))
        await asyncio.to_thread(first_started.wait, 10)  # the scorer is busy now
        later = [asyncio.ensure_future(batcher.submit([[i]])) for i in range(2, 7)]
        await asyncio.sleep(0.05)
        assert batcher.queued_rows == 5 and batcher.in_flight == 1
        release.set()
        return await first, await asyncio.gather(*later)

    first, later = asyncio.run(main())
    assert first == [10]
    assert later == [[20], [30], [40], [50], [60]]
    assert model_sizes == [1, 5]  # the five that waited went together, as soon as the first was done


def test_an_idle_scorer_does_not_wait_for_the_latency() -> None:
    model = SumModel()

    async def main() -> list[float]:
        batcher = MicroBatcher(model.predict_rows, max_batch_size=32, max_latency_ms=60_000)
        # A minute of max latency, yet a lone request is scored at once.
        return await asyncio.wait_for(batcher.submit([[2, 3]]), timeout=10)

    assert asyncio.run(main()) == [5]
    assert model.sizes == [1]


def test_max_latency_bounds_the_wait_while_another_batch_is_busy() -> None:
    release = threading.Event()
    calls: list[int] = []

    def blocking_first(rows: list[Any]) -> list[Any]:
        calls.append(len(rows))
        if len(calls) == 1:
            release.wait(10)
        return [row[0] for row in rows]

    async def main() -> list[Any]:
        batcher = MicroBatcher(blocking_first, max_batch_size=32, max_latency_ms=20)
        first = asyncio.ensure_future(batcher.submit([[1]]))
        await asyncio.sleep(0.01)
        # The first batch is stuck; the second is dispatched once its latency is over.
        second = await asyncio.wait_for(batcher.submit([[2]]), timeout=5)
        assert not first.done()
        release.set()
        return [await first, second]

    assert asyncio.run(main()) == [[1], [2]]
    assert calls == [1, 1]


def test_a_cancelled_caller_does_not_break_the_others() -> None:
    release = threading.Event()
    started = threading.Event()
    sizes: list[int] = []

    def model(rows: list[Any]) -> list[Any]:
        sizes.append(len(rows))
        if len(sizes) == 1:
            started.set()
            release.wait(10)
        return [row[0] + 1 for row in rows]

    async def main() -> tuple[Any, ...]:
        batcher = MicroBatcher(model, max_batch_size=8, max_latency_ms=10_000, max_concurrent_batches=1)
        running = asyncio.ensure_future(batcher.submit([[0]]))
        await asyncio.to_thread(started.wait, 10)
        queued = [asyncio.ensure_future(batcher.submit([[i]])) for i in (1, 2, 3)]
        await asyncio.sleep(0.01)
        queued[1].cancel()  # gives up while waiting for a batch
        running.cancel()  # gives up while its batch is being scored
        await asyncio.sleep(0.01)
        assert batcher.queued_rows == 2
        release.set()
        others = await asyncio.gather(queued[0], queued[2])
        await batcher.aclose()
        return running.cancelled(), queued[1].cancelled(), others

    running_cancelled, queued_cancelled, others = asyncio.run(main())
    assert running_cancelled and queued_cancelled
    assert others == [[2], [4]]
    assert sizes == [1, 2]  # the cancelled request's row was never scored


def test_timeouts_with_wait_for_leave_other_callers_alone() -> None:
    async def slow_for_big(fn: Callable, rows: list) -> Any:
        if len(rows) > 3:
            await asyncio.sleep(0.5)
        return fn(rows)

    async def main() -> list[Any]:
        batcher = MicroBatcher(
            lambda rows: [r * 2 for r in rows], max_batch_size=4, max_latency_ms=1, run_sync=slow_for_big
        )
        big = asyncio.wait_for(batcher.submit([1, 2, 3, 4]), timeout=0.05)
        small = batcher.submit([5])
        return await asyncio.gather(big, small, return_exceptions=True)

    big, small = asyncio.run(main())
    assert isinstance(big, TimeoutError)
    assert small == [10]


def test_empty_submit_and_bad_settings() -> None:
    batcher = MicroBatcher(lambda rows: rows, max_batch_size=2, max_latency_ms=1)
    assert asyncio.run(batcher.submit([])) == []
    with pytest.raises(ValueError):
        MicroBatcher(lambda rows: rows, max_batch_size=0, max_latency_ms=1)
    with pytest.raises(ValueError):
        MicroBatcher(lambda rows: rows, max_batch_size=1, max_latency_ms=-1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    counts=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=30),
    max_batch_size=st.integers(min_value=1, max_value=16),
    bad=st.one_of(st.none(), st.integers(min_value=0, max_value=29)),
)
def test_any_mix_of_row_counts_is_split_back_exactly(
    counts: list[int], max_batch_size: int, bad: int | None
) -> None:
    model = SumModel(bad=lambda row: row[0] < 0)

    def rows_of(i: int, n: int) -> list[list[float]]:
        sign = -1 if i == bad else 1
        return [[sign * (1000 * i + j + 1), 0.5] for j in range(n)]

    async def main() -> list[Any]:
        batcher = MicroBatcher(model.predict_rows, max_batch_size=max_batch_size, max_latency_ms=2)
        return await asyncio.gather(
            *(batcher.submit(rows_of(i, n)) for i, n in enumerate(counts)), return_exceptions=True
        )

    results = asyncio.run(main())
    for i, (n, result) in enumerate(zip(counts, results, strict=True)):
        if i == bad:
            assert isinstance(result, ValueError)
        else:
            assert result == [1000 * i + j + 1.5 for j in range(n)]
    for size in model.sizes:
        # A batch is within the limit unless it is one request that is larger on its own.
        assert size <= max_batch_size or size in counts
    if bad is None or bad >= len(counts):
        assert sum(model.sizes) == sum(counts)  # no retries: every row scored exactly once
