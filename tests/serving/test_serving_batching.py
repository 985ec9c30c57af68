"""Micro-batching of a real server process over HTTP: 64 concurrent callers on /score and on the
V2 infer route each get exactly the model's predictions for their own rows, while /metrics shows
that the rows of several requests shared one model call."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from bundles import SCORE_PY, make_bundle, serving
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

CALLERS = 64
MAX_ROWS = 3  # rows of one request: 1..3
# Each run() call takes at least 15 ms, so that requests arriving meanwhile pile up behind the
# batch being scored and must be stacked (the batcher only waits while a batch is in flight).
BATCHING_SCORE_PY = SCORE_PY.replace(
    "def run(raw_data):\n", "def run(raw_data):\n    import time; time.sleep(0.015)\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("batching")
    bundle, model = make_bundle(root / "bundle", BATCHING_SCORE_PY)
    settings = {
        "auth": False,
        "batching": {"max_batch_size": 32, "max_latency_ms": 20},
        "max_concurrent_requests": 4,
    }
    with serving(bundle, root, settings, "batch-1") as proc:
        yield proc.url, model


def caller_rows(i: int) -> list[list[float]]:
    """1..3 rows whose values encode the caller (distinct predictions for every caller)."""
    return [[i + 0.25 * j + 0.01 * c for c in range(10)] for j in range(1 + i % MAX_ROWS)]


def batch_histogram(url: str) -> dict[str, float]:
    """shipyard_batch_size: {"count", "sum", "le=<bound>": cumulative count}."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        if family.name != "shipyard_batch_size":
            continue
        for s in family.samples:
            if s.name.endswith("_count"):
                out["count"] = s.value
            elif s.name.endswith("_sum"):
                out["sum"] = s.value
            elif s.name.endswith("_bucket"):
                out[f"le={float(s.labels['le'])}"] = s.value
    return out


async def _fan_out(url: str, route: str, model_name: str) -> list[tuple[int, int, list[float]]]:
    limits = httpx.Limits(max_connections=CALLERS, max_keepalive_connections=CALLERS)
    async with httpx.AsyncClient(timeout=30, limits=limits, trust_env=False) as client:

        async def call(i: int) -> tuple[int, int, list[float]]:
            rows = caller_rows(i)
            if route == "score":
                r = await client.post(f"{url}/score", json={"data": rows})
                assert r.status_code == 200, r.text
                return i, r.status_code, r.json()["result"]
            flat = [v for row in rows for v in row]
            body = {
                "id": f"caller-{i}",
                "inputs": [{"name": "data", "datatype": "FP64", "shape": [len(rows), 10], "data": flat}],
            }
            r = await client.post(f"{url}/v2/models/{model_name}/infer", json=body)
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["id"] == f"caller-{i}" and out["model_name"] == model_name
            (output,) = out["outputs"]
            assert output["name"] == "predict" and output["shape"][0] == len(rows)
            return i, r.status_code, output["data"]

        return await asyncio.gather(*(call(i) for i in range(CALLERS)))


@pytest.mark.parametrize("route", ["score", "v2"])
def test_every_concurrent_caller_gets_its_own_predictions_from_shared_batches(server, route):
    url, model = server
    before = batch_histogram(url)
    results = asyncio.run(_fan_out(url, route, "diabetes-ridge"))
    after = batch_histogram(url)

    assert sorted(i for i, _, _ in results) == list(range(CALLERS))
    for i, status, got in results:
        expected = model.predict(np.array(caller_rows(i), dtype=float)).tolist()
        assert status == 200
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-9), f"caller {i} got someone else's rows"

    rows_sent = sum(len(caller_rows(i)) for i in range(CALLERS))
    calls = after["count"] - before.get("count", 0)
    rows_scored = after["sum"] - before.get("sum", 0)
    # Every row went through the model exactly once (no batch failed and was retried alone).
    assert rows_scored == rows_sent
    # Fewer model calls than requests: requests shared calls.
    assert 1 <= calls < CALLERS
    assert rows_scored / calls > MAX_ROWS
    # At least one model call had more rows (> 4) than any single request (<= 3) can bring.
    over_four = (after["count"] - after["le=4.0"]) - (before.get("count", 0) - before.get("le=4.0", 0))
    assert over_four >= 1
    # No call went over max_batch_size.
    assert after["count"] - after["le=32.0"] == before.get("count", 0) - before.get("le=32.0", 0)
