"""The ASGI app that serves one bundle.

Routes, whatever the bundle's contract:
- Azure ML: `GET /` (liveness), `POST /score`, `GET /swagger.json`
- MLflow scoring server: `POST /invocations`, `GET /ping`, `GET /health`, `GET /version`
  (for MLflow-model bundles)
- Open Inference Protocol V2: `/v2/health/*`, `/v2`, `/v2/models/{name}[/versions/{v}][/ready|/infer]`
- `GET /metrics` (Prometheus)

Every request passes, outermost first: request context (ids, traceparent, access log, metrics),
key auth (when on), the body limit; scoring then takes a slot (concurrency, queue wait, timeout)
and, with batching on, shares one model call with concurrent requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shipyard.config.models import ServingConfig
from shipyard.serving.auth import KeyAuth
from shipyard.serving.errors import error_response
from shipyard.serving.limits import Overloaded, ScoringSlots, ScoringTimeout
from shipyard.serving.metrics import ServingMetrics
from shipyard.serving.middleware import AuthMiddleware, BodyLimitMiddleware, RequestContextMiddleware
from shipyard.serving.scoring import ParsedBody, ScoringScript
from shipyard.serving.servable import PredictionShapeError
from shipyard.serving.validation import ScoringInputError, parse_body, validate_payload

logger = logging.getLogger("shipyard.serving")
access_logger = logging.getLogger("shipyard.serving.access")

_HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def _jsonable(obj: Any) -> Any:
    # numpy arrays and scalars, without importing numpy here.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def json_response(body: Any, status_code: int = 200) -> Response:
    """orjson-encoded JSON (numpy-safe); NaN and infinities are refused, not sent as null."""
    if isinstance(body, str | bytes | bytearray):
        raw = body.encode() if isinstance(body, str) else bytes(body)
        try:
            orjson.loads(raw)
        except orjson.JSONDecodeError:
            raw = orjson.dumps(body if isinstance(body, str) else raw.decode())
        return Response(raw, status_code=status_code, media_type="application/json")
    _reject_non_finite(body)
    raw = orjson.dumps(body, default=_jsonable, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(raw, status_code=status_code, media_type="application/json")


def _reject_non_finite(value: Any) -> None:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise ValueError("the result contains NaN or infinity, which JSON cannot carry")
    if isinstance(value, list | tuple):
        for v in value:
            _reject_non_finite(v)
    elif isinstance(value, dict):
        for v in value.values():
            _reject_non_finite(v)


def _load(bundle_path: Path):
    try:
        from shipyard.serving.loader import load_servable
    except ImportError:  # pragma: no cover - until MLflow-model bundles are wired
        return ScoringScript.load(bundle_path)
    return load_servable(bundle_path)


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

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from shipyard.serving import printlog

        printlog.install()
        app.state.ready = False
        started = time.perf_counter()
        try:
            servable = _load(bundle_path)
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
        )
        app.state.servable = servable
        app.state.metrics = metrics
        app.state.call = slots.call
        app.state.predict_rows, batcher = _row_scorer(servable, slots, settings, metrics)
        app.state.batching = settings.batching.max_batch_size > 0
        app.state.capture = _capture(settings, capture_dir)
        app.state.ready = True
        logger.info("serving %s version %s", servable.model_name, servable.model_version)
        try:
            yield
        finally:
            app.state.ready = False
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

    middleware = [
        Middleware(
            RequestContextMiddleware, deployment_id=deployment_id, metrics=metrics, logger=access_logger
        )
    ]
    if settings.auth:
        middleware.append(Middleware(AuthMiddleware, auth=KeyAuth(keys_file), metrics=metrics))
    middleware.append(
        Middleware(BodyLimitMiddleware, max_bytes=int(settings.max_body_mb * 1024 * 1024), metrics=metrics)
    )
    return Starlette(
        routes=_routes(deployment_id),
        middleware=middleware,
        exception_handlers={HTTPException: http_error, Overloaded: overloaded, ScoringTimeout: timed_out},
        lifespan=lifespan,
    )


def _row_scorer(servable, slots: ScoringSlots, settings: ServingConfig, metrics: ServingMetrics):
    """`await predict_rows(rows, request)`: through the micro-batcher when on, else one call."""
    batching = settings.batching
    if batching.max_batch_size > 0:
        from shipyard.serving.batching import MicroBatcher

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
    from shipyard.serving.capture import DataCapture

    folder = Path(cap.folder) if cap.folder else capture_dir
    if folder is None:
        logger.warning("data capture is on but no folder is set; capture is off")
        return None
    return DataCapture(folder, sample_rate=cap.sample_rate, max_file_mb=cap.max_file_mb)


def _routes(deployment_id: str | None) -> list:
    async def health(request: Request) -> Response:
        servable = request.app.state.servable
        return JSONResponse(
            {
                "status": "healthy",
                "model_name": servable.model_name,
                "model_version": servable.model_version,
                "deployment_id": deployment_id,
            }
        )

    async def score(request: Request) -> Response:
        state = request.app.state
        request_id = request.state.request_id
        try:
            body = await request.body()
            if isinstance(state.servable, ScoringScript) and not state.batching:
                raw = payload = state.servable.validate(body)
                headers = {**request.headers, "x-request-id": request_id}
                result = await state.call(state.servable.run, raw, headers)
            else:  # row-based: batching on, or an MLflow model behind the Azure ML route
                _, payload = parse_body(body)
                if isinstance(state.servable, ScoringScript):
                    validate_payload(payload, state.servable.checks)  # names the bad field
                name = (state.servable.input_spec() or {}).get("name", "data")
                result = {"result": await state.predict_rows(_rows_of(payload, name), request)}
        except ScoringInputError as exc:
            extra = {"field": exc.field} if exc.field else {}
            return error_response(request, exc.status_code, exc.code, str(exc), **extra)
        except (Overloaded, ScoringTimeout):
            raise
        except Exception as exc:
            logger.exception("run() failed (request_id=%s)", request_id)
            message = f"the scoring script failed: {type(exc).__name__}: {exc}"
            return error_response(request, 500, "scoring_failed", message)
        try:
            response = json_response(result)
        except (TypeError, ValueError) as exc:
            logger.exception("run() returned a result that is not JSON (request_id=%s)", request_id)
            message = f"the scoring script returned a result that cannot be sent as JSON: {exc}"
            return error_response(request, 500, "invalid_result", message)
        if state.capture is not None:
            # The parsed request, not its text (validate() returns the body as text).
            inputs = payload.payload if isinstance(payload, ParsedBody) else payload
            if isinstance(inputs, str):
                inputs = orjson.loads(inputs)
            state.capture.capture(request_id, inputs, result)
        return response

    async def swagger(request: Request) -> Response:
        from shipyard.serving.swagger import SwaggerVersionError, build_swagger

        try:
            doc = build_swagger(request.app.state.servable, request.query_params.get("version"))
        except SwaggerVersionError as exc:
            return error_response(request, 404, "not_found", str(exc))
        return json_response(doc)

    async def metrics_route(request: Request) -> Response:
        body, content_type = request.app.state.metrics.render()
        return Response(body, media_type=content_type)

    from shipyard.serving.pyfunc_routes import pyfunc_routes
    from shipyard.serving.v2 import v2_routes

    return [
        Route("/", health, methods=["GET"]),
        Route("/score", score, methods=["POST"]),
        Route("/swagger.json", swagger, methods=["GET"]),
        Route("/metrics", metrics_route, methods=["GET"]),
        *pyfunc_routes(),
        *v2_routes(),
    ]


def _rows_of(payload: Any, name: str) -> list:
    """The rows of a row-based request: under "data" (Azure ML's usual key) or the input's name."""
    key = "data" if isinstance(payload, dict) and "data" in payload else name
    rows = payload.get(key) if isinstance(payload, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ScoringInputError(f'body: expected {{"{key}": [row, ...]}} with at least one row', key)
    return rows


__all__ = ["create_app", "json_response", "PredictionShapeError"]
