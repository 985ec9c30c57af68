"""ServingMetrics: values after observations, route templates from a real Starlette app, and an
exposition that Prometheus' own parser reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.testclient import TestClient

from shipyard.serving.server.metrics import (
    DURATION_BUCKETS,
    ServingMetrics,
    mark_process_dead,
    route_template,
)


def samples(metrics: ServingMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the rendered exposition, keyed by (name, sorted labels)."""
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_requests_counts_and_duration_sums() -> None:
    m = ServingMetrics()
    m.observe_request("/score", "POST", 200, 0.010)
    m.observe_request("/score", "POST", 200, 0.030)
    m.observe_request("/score", "post", 500, 0.002)
    m.observe_request("/v2/models/{name}/infer", "POST", 200, 1.5)
    m.observe_request("/score", "BREW", 405, 0.001)  # an unknown method does not add a label value

    got = samples(m)
    assert got[("shipyard_requests_total", (("method", "POST"), ("route", "/score"), ("status", "200")))] == 2
    assert got[("shipyard_requests_total", (("method", "POST"), ("route", "/score"), ("status", "500")))] == 1
    assert (
        got[("shipyard_requests_total", (("method", "other"), ("route", "/score"), ("status", "405")))] == 1
    )
    key = (("method", "POST"), ("route", "/score"))
    assert got[("shipyard_request_duration_seconds_count", key)] == 3
    assert got[("shipyard_request_duration_seconds_sum", key)] == pytest.approx(0.042)
    # Cumulative buckets: 0.002 ≤ 0.0025; 0.010 ≤ 0.01; 0.030 ≤ 0.05.
    assert got[("shipyard_request_duration_seconds_bucket", (("le", "0.0025"), *key))] == 1
    assert got[("shipyard_request_duration_seconds_bucket", (("le", "0.01"), *key))] == 2
    assert got[("shipyard_request_duration_seconds_bucket", (("le", "0.05"), *key))] == 3
    infer = (("method", "POST"), ("route", "/v2/models/{name}/infer"))
    assert got[("shipyard_request_duration_seconds_sum", infer)] == pytest.approx(1.5)
    assert DURATION_BUCKETS[0] == 0.0005 and DURATION_BUCKETS[-1] == 10.0


def test_batch_queue_in_flight_load_and_rejections() -> None:
    m = ServingMetrics()
    for rows in (1, 3, 8, 8):
        m.observe_batch(rows)
    m.queue_entered()
    m.queue_entered()
    m.queue_entered()
    m.queue_left()
    m.in_flight_inc()
    m.in_flight_inc()
    m.in_flight_dec()
    m.set_model_load_seconds(2.25)
    m.rejected("overloaded")
    m.rejected("overloaded")
    m.rejected("unauthorized")

    got = samples(m)
    assert got[("shipyard_batch_size_count", ())] == 4
    assert got[("shipyard_batch_size_sum", ())] == 20
    assert got[("shipyard_batch_size_bucket", (("le", "4.0"),))] == 2
    assert got[("shipyard_queue_depth", ())] == 2
    assert got[("shipyard_in_flight", ())] == 1
    assert got[("shipyard_model_load_seconds", ())] == 2.25
    assert got[("shipyard_rejected_total", (("reason", "overloaded"),))] == 2
    assert got[("shipyard_rejected_total", (("reason", "unauthorized"),))] == 1

    m.set_queue_depth(7)
    assert samples(m)[("shipyard_queue_depth", ())] == 7


def test_two_instances_do_not_share_values() -> None:
    a, b = ServingMetrics(), ServingMetrics()
    a.observe_batch(5)
    assert samples(a)[("shipyard_batch_size_count", ())] == 1
    assert samples(b)[("shipyard_batch_size_count", ())] == 0


async def _ok(request: Request) -> Response:
    return PlainTextResponse("ok")


def _app(seen: list[str], seen_before: list[str]) -> Starlette:
    """A small app whose outermost middleware records the template before and after routing."""

    class Recorder:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                seen_before.append(route_template(scope))
            await self.app(scope, receive, send)
            if scope["type"] == "http":
                seen.append(route_template(scope))

    from starlette.middleware import Middleware

    inner = Router(routes=[Route("/items/{item_id:int}", _ok), Route("/", _ok)])
    return Starlette(
        routes=[
            Route("/", _ok),
            Route("/score", _ok, methods=["POST"]),
            Route("/v2/models/{name}/infer", _ok, methods=["POST"]),
            Route("/v2/models/{name}/versions/{version}/infer", _ok, methods=["POST"]),
            Mount("/admin", routes=[Route("/users/{user}", _ok)]),
            Mount("/shop", app=inner),
        ],
        middleware=[Middleware(Recorder)],
    )


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("GET", "/", "/"),
        ("POST", "/score", "/score"),
        ("POST", "/v2/models/diabetes/infer", "/v2/models/{name}/infer"),
        ("POST", "/v2/models/other-model/infer", "/v2/models/{name}/infer"),
        ("POST", "/v2/models/diabetes/versions/3/infer", "/v2/models/{name}/versions/{version}/infer"),
        ("GET", "/score", "/score"),  # 405: matched by path
        ("GET", "/admin/users/ann", "/admin/users/{user}"),
        ("GET", "/shop/items/42", "/shop/items/{item_id:int}"),
        ("GET", "/no/such/path/12345", "other"),
        ("GET", "/shop/items/not-a-number", "other"),
    ],
)
def test_route_templates_of_a_starlette_app(method: str, path: str, template: str) -> None:
    seen: list[str] = []
    seen_before: list[str] = []
    with TestClient(_app(seen, seen_before)) as client:
        client.request(method, path)
    assert seen == [template]  # after routing (scope["route"] set, or matched)
    assert seen_before == [template]  # before routing (e.g. a 401 from an outer middleware)


def test_route_template_without_an_app() -> None:
    assert route_template({"type": "http", "path": "/score", "method": "POST"}) == "other"
    assert route_template({"type": "lifespan"}) == "other"


def test_requests_through_an_app_are_labelled_by_template() -> None:
    metrics = ServingMetrics()

    class Observe:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            status = 500

            async def send_status(message: Any) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            await self.app(scope, receive, send_status)
            metrics.observe_request(route_template(scope), scope["method"], status, 0.001)

    async def render(request: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    from starlette.middleware import Middleware

    app = Starlette(
        routes=[Route("/v2/models/{name}/infer", _ok, methods=["POST"]), Route("/metrics", render)],
        middleware=[Middleware(Observe)],
    )
    with TestClient(app) as client:
        for name in ("a", "b", "c"):
            assert client.post(f"/v2/models/{name}/infer").status_code == 200
        assert client.get("/missing").status_code == 404
        text = client.get("/metrics").text
    counts = {
        (s.labels["route"], s.labels["status"]): s.value
        for f in text_string_to_metric_families(text)
        if f.name == "shipyard_requests"
        for s in f.samples
        if s.name == "shipyard_requests_total"
    }
    assert counts == {("/v2/models/{name}/infer", "200"): 3, ("other", "404"): 1}


MULTIPROCESS_WORKER = """
import os
import sys
from shipyard.serving.server.metrics import ServingMetrics
m = ServingMetrics()
m.observe_request("/score", "POST", 200, 0.01)
m.observe_batch(int(sys.argv[1]))
m.in_flight_inc()
m.set_model_load_seconds(float(sys.argv[1]))
body, _ = m.render()
sys.stdout.write(body.decode())
sys.stderr.write(str(os.getpid()))
"""


def test_multiprocess_mode_merges_worker_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "prom"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    outputs, pids = [], []
    for rows in (3, 5):  # two "workers", one after the other, each a real process
        done = subprocess.run(
            [sys.executable, "-c", MULTIPROCESS_WORKER, str(rows)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.append(done.stdout)
        pids.append(int(done.stderr))
    got = {}
    for family in text_string_to_metric_families(outputs[-1]):
        for s in family.samples:
            got[(s.name, tuple(sorted(s.labels.items())))] = s.value
    # The second worker's scrape shows both workers' counts.
    assert got[("shipyard_requests_total", (("method", "POST"), ("route", "/score"), ("status", "200")))] == 2
    assert got[("shipyard_batch_size_sum", ())] == 8
    # livemax/livesum gauges count processes that have not been marked dead (both exited without it).
    assert got[("shipyard_model_load_seconds", ())] == 5
    assert got[("shipyard_in_flight", ())] == 2

    # The supervisor marks the first worker dead: its live gauges stop counting, counters stay.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    mark_process_dead(pids[0])
    after = samples(ServingMetrics())
    assert after[("shipyard_in_flight", ())] == 1
    assert after[("shipyard_model_load_seconds", ())] == 5
    assert after[("shipyard_batch_size_sum", ())] == 8
