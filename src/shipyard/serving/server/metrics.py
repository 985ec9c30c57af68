"""Prometheus metrics of the scoring server, served at ``GET /metrics``.

Every `ServingMetrics` has its own `CollectorRegistry` (never the process-global one), so several
apps in one process (tests, a benchmark) do not collide over metric names.

Series:

- ``shipyard_requests_total{route,method,status}``: requests answered;
- ``shipyard_request_duration_seconds{route,method}``: histogram, 0.5 ms … 10 s;
- ``shipyard_batch_size``: histogram of rows per model call (batched or not);
- ``shipyard_queue_depth``: requests waiting for a scoring slot;
- ``shipyard_in_flight``: requests being scored (holding a slot);
- ``shipyard_scoring_calls_total{where}``: model calls by where they ran, ``inline`` (on the
  event loop, see inline.py) or ``thread`` (a scoring thread);
- ``shipyard_model_load_seconds``: how long loading the model took at startup;
- ``shipyard_rejected_total{reason}``: requests refused before scoring, e.g. ``unauthorized``
  (401), ``body_too_large`` (413), ``overloaded`` (503), ``timeout`` (504).

Labels stay few: ``route`` is the route *template* (``/v2/models/{name}/infer``, see
`route_template`), never the raw path, and unknown HTTP methods are counted as ``other``.

Several worker processes: prometheus_client's multiprocess mode. The server's launcher sets
``PROMETHEUS_MULTIPROC_DIR`` to an empty, writable folder *before* the workers import
prometheus_client (the client picks its value storage at import time); every worker then writes
its values to memory-mapped files there and `render` merges the files of all workers
(`MultiProcessCollector`), so a scrape of any worker shows the whole server. Gauges are combined
as ``livesum`` (queue depth, in flight: the sum over live workers) or ``livemax`` (model load
time); counters and histograms are summed. When a worker exits, the launcher calls
`mark_process_dead(pid)` so its live gauges stop counting; the folder is wiped between server runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Scoring latencies: from a fast in-memory model (sub-millisecond) to the default timeout range.
DURATION_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_ROUTE = "other"


def multiprocess_dir() -> str | None:
    """The folder of prometheus_client's multiprocess mode, or None when it is off.

    prometheus_client itself switches on this variable (at import), so it is read here rather
    than passed through the config: the two must agree.
    """
    return os.environ.get(MULTIPROC_ENV) or None


class ServingMetrics:
    """The scoring server's Prometheus metrics, in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = multiprocess_dir()
        self._request_children: dict[tuple[str, str, int | str], tuple[Any, Any]] = {}
        reg = self.registry
        self.requests = Counter(
            "shipyard_requests_total",
            "Requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=reg,
        )
        self.request_duration = Histogram(
            "shipyard_request_duration_seconds",
            "Time from the request's arrival to the end of its response.",
            ["route", "method"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.batch_size = Histogram(
            "shipyard_batch_size",
            "Rows per model call (micro-batches stack the rows of concurrent requests).",
            buckets=BATCH_SIZE_BUCKETS,
            registry=reg,
        )
        self.queue_depth = Gauge(
            "shipyard_queue_depth",
            "Requests waiting for a scoring slot.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.in_flight = Gauge(
            "shipyard_in_flight",
            "Requests being scored (holding a scoring slot).",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.model_load_seconds = Gauge(
            "shipyard_model_load_seconds",
            "Seconds it took to load the model at startup.",
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.scoring_calls = Counter(
            "shipyard_scoring_calls_total",
            "Model calls, by where they ran: inline (on the event loop) or thread (a scoring thread).",
            ["where"],
            registry=reg,
        )
        self._scoring_calls = {w: self.scoring_calls.labels(where=w) for w in ("inline", "thread")}
        self.rejections = Counter(
            "shipyard_rejected_total",
            "Requests refused before or instead of scoring, by reason.",
            ["reason"],
            registry=reg,
        )

    # -- requests ---------------------------------------------------------------------------
    def observe_request(self, route: str, method: str, status: int | str, seconds: float) -> None:
        """Count one answered request and record its duration.

        `route` must be a route template (see `route_template`), not a raw path.
        """
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:  # labels() lookups cost more than the observation: cache the children
            m = method.upper()
            if m not in _KNOWN_METHODS:
                m = "other"
            children = (
                self.requests.labels(route=route, method=m, status=str(status)),
                self.request_duration.labels(route=route, method=m),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(max(seconds, 0.0))

    def rejected(self, reason: str) -> None:
        """Count one refused request, e.g. ``unauthorized``, ``body_too_large``, ``overloaded``."""
        self.rejections.labels(reason=reason).inc()

    # -- scoring ----------------------------------------------------------------------------
    def observe_batch(self, rows: int) -> None:
        """Record the number of rows of one model call."""
        self.batch_size.observe(rows)

    def scoring_call(self, where: str) -> None:
        """Count one model call that ran ``inline`` or on a ``thread``."""
        self._scoring_calls[where].inc()

    def queue_entered(self) -> None:
        """A request starts waiting for a scoring slot."""
        self.queue_depth.inc()

    def queue_left(self) -> None:
        """A request stops waiting (it got a slot, or gave up)."""
        self.queue_depth.dec()

    def set_queue_depth(self, waiting: int) -> None:
        """Set the number of requests waiting for a scoring slot (for callers that count)."""
        self.queue_depth.set(waiting)

    def in_flight_inc(self) -> None:
        """A request starts scoring."""
        self.in_flight.inc()

    def in_flight_dec(self) -> None:
        """A request is done scoring."""
        self.in_flight.dec()

    def set_model_load_seconds(self, seconds: float) -> None:
        """Record how long loading the model took."""
        self.model_load_seconds.set(seconds)

    # -- exposition -------------------------------------------------------------------------
    def render(self) -> tuple[bytes, str]:
        """The text exposition of every metric and its content type (for ``GET /metrics``).

        In multiprocess mode the values of all worker processes are merged from the files in
        ``PROMETHEUS_MULTIPROC_DIR``.
        """
        if self.multiprocess_dir:
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged, path=self.multiprocess_dir)
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int, path: str | Path | None = None) -> None:
    """Multiprocess mode: forget the live gauges of a worker process that exited.

    Call it from the process that supervises the workers (e.g. gunicorn's ``child_exit``).
    Does nothing when multiprocess mode is off.
    """
    folder = str(path) if path is not None else multiprocess_dir()
    if not folder:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, folder)


def route_template(scope: Mapping[str, Any]) -> str:
    """The path template of the route that serves `scope`, e.g. ``/v2/models/{name}/infer``.

    Uses ``scope["route"]`` when Starlette's router has set it (after routing) and otherwise
    matches the app's routes, going into `Mount`s (their prefix is kept). Requests no route
    matches (404s) are ``"other"``, so label cardinality stays bounded whatever clients send.
    A route that matched by path only (405) still gives its template.
    """
    if scope.get("type") not in ("http", "websocket"):
        return OTHER_ROUTE
    app = scope.get("app")
    routes = getattr(app, "routes", None)
    if routes is None:
        router = scope.get("router")
        routes = getattr(router, "routes", None)
    route = scope.get("route")
    if (
        route is not None
        and not getattr(route, "routes", None)
        and routes is not None
        and any(r is route for r in routes)
    ):
        # An endpoint matched at the top level: its path is the whole template (no Mount prefix).
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path or "/"
    if not routes:
        return OTHER_ROUTE
    # Routing may have rewritten root_path (Mount); match from the app's own root.
    match_scope = dict(scope)
    match_scope["root_path"] = scope.get("app_root_path", scope.get("root_path", ""))
    match_scope.pop("path_params", None)
    return _match(routes, match_scope, "") or OTHER_ROUTE


def _match(routes: Any, scope: dict[str, Any], prefix: str) -> str | None:
    from starlette.routing import Match

    partial: str | None = None
    for route in routes:
        try:
            match, child = route.matches(scope)
        except Exception:  # a custom route that cannot judge this scope: not ours
            continue
        if match is Match.NONE:
            continue
        path = getattr(route, "path", "") or ""
        sub_routes = getattr(route, "routes", None)
        if sub_routes:  # Mount or Host: go one level down
            found = _match(sub_routes, {**scope, **child}, prefix + path)
            template = found
        else:
            template = prefix + path
        if not template:
            continue
        if match is Match.FULL:
            return template
        if partial is None:
            partial = template
    return partial
