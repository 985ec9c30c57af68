"""The ASGI app that serves one bundle.

Routes, whatever the bundle's contract:
- Azure ML: `GET /` (liveness), `POST /score`, `GET /swagger.json`
- `GET /health`: the same answer as `GET /`
- MLflow scoring server: `POST /invocations`, `GET /ping`, `GET /version` (for MLflow-model bundles)
- Open Inference Protocol V2: `/v2/health/*`, `/v2`, `/v2/models/{name}[/versions/{v}][/ready|/infer]`
- `GET /metrics` (Prometheus)

Every request passes, outermost first: request context (ids, traceparent, access log, metrics),
key auth (when on), the body limit; scoring routes check the body's parse cost (bounds.py), then
take a slot (concurrency, queue wait, timeout) and, with batching on, share one model call with
concurrent requests. Slow and excess connections are cut below the app (server/connections.py).

The health answer (`GET /`, `GET /health`) is open, as probes need: `{"status": "healthy"}`. What is
served (model name, version, deployment id) is told only where the routes that score are open
too: auth off, or a valid key. A prober that names the deployment it expects
(`X-Shipyard-Deployment-Id`, as `wait_healthy` does) gets that id back when it is right, so it
can tell that it reached the server it started without holding a key.
"""

from __future__ import annotations

import gc
import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shipyard.serving.azureml.routes import ScoreRoute, azureml_routes
from shipyard.serving.bounds import ParseBounds
from shipyard.serving.errors import error_response
from shipyard.serving.loader import load_servable
from shipyard.serving.mlflow.routes import pyfunc_routes
from shipyard.serving.server.auth import KeyAuth
from shipyard.serving.server.fastpath import FastScore, ServingApp
from shipyard.serving.server.limits import Overloaded, ScoringSlots, ScoringTimeout
from shipyard.serving.server.metrics import ServingMetrics
from shipyard.serving.server.middleware import (
    AuthMiddleware,
    BodyLimit,
    BodyLimitMiddleware,
    KeyGate,
    RequestContext,
    RequestContextMiddleware,
    first_headers,
)
from shipyard.serving.settings import ServingConfig
from shipyard.serving.v2.routes import v2_routes

logger = logging.getLogger("shipyard.serving")
access_logger = logging.getLogger("shipyard.serving.access")

_HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
# Sent by `wait_healthy` and the container target: the deployment they started.
DEPLOYMENT_HEADER = "x-shipyard-deployment-id"


def create_app(
    bundle_dir: str | Path,
    deployment_id: str | None = None,
    settings: ServingConfig | None = None,
    keys_file: Path | None = None,
    capture_dir: Path | None = None,
) -> Starlette:
    """Build the app serving the bundle in `bundle_dir`; the model is loaded at startup."""
    bundle_path = Path(bundle_dir)
    settings = settings or ServingConfig()
    metrics = ServingMetrics()
    context = RequestContext(deployment_id, metrics, access_logger)
    gate = KeyGate(KeyAuth(keys_file), metrics) if settings.auth else None
    limit = BodyLimit(int(settings.max_body_mb * 1024 * 1024), metrics)
    fast = FastScore(context, gate, limit)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from shipyard.serving import printlog

        printlog.install()
        app.state.ready = False
        started = time.perf_counter()
        try:
            servable = load_servable(bundle_path)
        except Exception as exc:
            # One line here; the server (uvicorn, TestClient) reports the traceback itself.
            logger.error("cannot load the bundle in %s: %s: %s", bundle_path, type(exc).__name__, exc)
            raise
        metrics.set_model_load_seconds(time.perf_counter() - started)
        slots = ScoringSlots(
            settings.max_concurrent_requests,
            settings.max_queue_wait_ms,
            settings.scoring_timeout_ms,
            on_queue=metrics.set_queue_depth,
            inline_below_ms=settings.inline_below_ms,
            on_call=metrics.scoring_call,
        )
        app.state.servable = servable
        app.state.metrics = metrics
        app.state.call = slots.call
        app.state.predict_rows, batcher = _row_scorer(servable, slots, settings, metrics)
        app.state.batching = settings.batching.max_batch_size > 0
        app.state.bounds = parse_bounds(settings, servable)
        app.state.capture = _capture(settings, capture_dir)
        app.state.score = ScoreRoute(
            servable,
            slots.call,
            app.state.predict_rows,
            app.state.batching,
            app.state.capture,
            metrics,
            app.state.bounds,
            settings.max_image_pixels,
        )
        fast.route = app.state.score
        app.state.ready = True
        # What startup made (the model, the libraries) lives as long as the process: out of the
        # collector's way, so that a full collection under load does not walk it (p99 spikes).
        gc.freeze()
        logger.info("serving %s version %s", servable.model_name, servable.model_version)
        try:
            yield
        finally:
            app.state.ready = False
            fast.route = None
            if batcher is not None:
                await batcher.aclose()
            if app.state.capture is not None:
                app.state.capture.close(timeout=10)
            slots.close()

    async def overloaded(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Overloaded)
        metrics.rejected("overloaded")
        return error_response(
            request, 503, "overloaded", str(exc), headers={"Retry-After": str(exc.retry_after_s)}
        )

    async def timed_out(request: Request, exc: Exception) -> Response:
        metrics.rejected("timeout")
        return error_response(request, 504, "scoring_timeout", str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = _HTTP_ERROR_CODES.get(exc.status_code, "http_error")
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return error_response(request, exc.status_code, code, message, headers=exc.headers)

    async def disconnected(request: Request, exc: Exception) -> Response:
        # The client went away, or its body did not arrive in time (server/connections.py answered 408
        # and closed): nobody reads this answer; it is for the access log and the metrics.
        return error_response(request, 408, "request_timeout", "the request body did not arrive")

    middleware = [Middleware(RequestContextMiddleware, context=context)]
    if gate is not None:
        middleware.append(Middleware(AuthMiddleware, gate=gate))
    middleware.append(Middleware(BodyLimitMiddleware, limit=limit))
    app = ServingApp(
        routes=_routes(deployment_id, gate),
        middleware=middleware,
        exception_handlers={
            HTTPException: http_error,
            Overloaded: overloaded,
            ScoringTimeout: timed_out,
            ClientDisconnect: disconnected,
        },
        lifespan=lifespan,
    )
    app.fast = fast
    return app


def _row_scorer(servable, slots: ScoringSlots, settings: ServingConfig, metrics: ServingMetrics):
    """`await predict_rows(rows, request)`: through the micro-batcher when on, else one call."""
    batching = settings.batching
    if batching.max_batch_size > 0:
        from shipyard.serving.server.batching import MicroBatcher

        batcher = MicroBatcher(
            servable.predict_rows,
            max_batch_size=batching.max_batch_size,
            max_latency_ms=batching.max_latency_ms,
            run_sync=slots.call,
            on_batch=metrics.observe_batch,
        )

        async def batched(rows: list, request: Request | None = None) -> list:
            return await batcher.submit(rows)

        return batched, batcher

    async def direct(rows: list, request: Request | None = None) -> list:
        metrics.observe_batch(len(rows))
        return await slots.call(servable.predict_rows, rows)

    return direct, None


def _capture(settings: ServingConfig, capture_dir: Path | None):
    cap = settings.capture
    if not cap.enabled:
        return None
    from shipyard.serving.capture.collector import DataCapture

    folder = Path(cap.folder) if cap.folder else capture_dir
    if folder is None:
        logger.warning("data capture is on but no folder is set; capture is off")
        return None
    return DataCapture(
        folder, sample_rate=cap.sample_rate, max_file_mb=cap.max_file_mb, file_format=cap.format
    )


def parse_bounds(settings: ServingConfig, servable) -> ParseBounds:
    """The server's parse bounds: its settings, widened to the model's signature."""
    bounds = ParseBounds(settings.max_json_depth, settings.max_body_elements, settings.max_columns)
    spec = servable.input_spec() or {}
    shape = spec.get("shape") or []
    return bounds.widened(shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None)


def _routes(deployment_id: str | None, gate: KeyGate | None) -> list:
    async def health(request: Request) -> Response:
        servable = getattr(request.app.state, "servable", None)
        if servable is None or not getattr(request.app.state, "ready", False):
            return JSONResponse({"status": "unavailable"}, status_code=503)
        headers = first_headers(request.scope)
        if gate is None or gate.reason(headers) is None:
            body = {
                "status": "healthy",
                "model_name": servable.model_name,
                "model_version": servable.model_version,
                "deployment_id": deployment_id,
            }
            return JSONResponse(body)
        body = {"status": "healthy"}
        named = headers.get(DEPLOYMENT_HEADER.encode(), b"")
        if deployment_id and hmac.compare_digest(named, deployment_id.encode()):
            body["deployment_id"] = deployment_id
        return JSONResponse(body)

    async def metrics_route(request: Request) -> Response:
        body, content_type = request.app.state.metrics.render()
        return Response(body, media_type=content_type)

    return [
        Route("/", health, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        *azureml_routes(),
        Route("/metrics", metrics_route, methods=["GET"]),
        *pyfunc_routes(),
        *v2_routes(),
    ]
