"""The ASGI app that serves one bundle: ``GET /`` liveness and ``POST /score``.

Every error is a JSON body ``{"error": {"code", "message", "request_id"}}`` with a 4xx/5xx status;
every response carries ``x-request-id``; one JSON line per request goes to the
``shipyard.serving.access`` logger.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.serving.scoring import ScoringInputError, ScoringScript

logger = logging.getLogger("shipyard.serving")
access_logger = logging.getLogger("shipyard.serving.access")

REQUEST_ID_HEADER = "x-request-id"
# A caller's request id is echoed only if it is short and printable: it lands in logs and headers.
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", None) or uuid.uuid4().hex


def error_response(
    status_code: int,
    code: str,
    message: str,
    request_id: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """Build the JSON error body every failing response uses."""
    body = {"error": {"code": code, "message": message, "request_id": request_id, **extra}}
    return JSONResponse(body, status_code=status_code, headers=headers)


def _to_jsonable(obj: Any) -> Any:
    # numpy arrays and scalars, without importing numpy here.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def result_response(result: Any) -> Response:
    """Turn what run() returned into a JSON response (a str that is JSON passes through)."""
    if isinstance(result, bytes | bytearray):
        result = bytes(result).decode("utf-8")
    if isinstance(result, str):
        try:
            json.loads(result)
        except ValueError:
            pass
        else:
            return Response(result, media_type="application/json")
    body = json.dumps(result, default=_to_jsonable, allow_nan=False, ensure_ascii=False)
    return Response(body, media_type="application/json")


class RequestContextMiddleware:
    """Assigns a request id, adds it to the response headers and logs one JSON line per request."""

    def __init__(self, app: ASGIApp, deployment_id: str | None = None) -> None:
        self.app = app
        self.deployment_id = deployment_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = given if _REQUEST_ID_OK.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            record = {
                "event": "request",
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - start) * 1000, 3),
                "request_id": request_id,
            }
            if self.deployment_id:
                record["deployment_id"] = self.deployment_id
            access_logger.info(json.dumps(record))


def create_app(bundle_dir: str | Path, deployment_id: str | None = None) -> Starlette:
    """Build the app serving the bundle in ``bundle_dir``; the script is loaded at startup."""
    bundle_path = Path(bundle_dir)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            app.state.script = ScoringScript.load(bundle_path)
        except Exception as exc:
            # One line here; the server (uvicorn, TestClient) reports the traceback itself.
            logger.error("cannot load the bundle in %s: %s: %s", bundle_path, type(exc).__name__, exc)
            raise
        script = app.state.script
        logger.info("serving %s version %s", script.model_name, script.model_version)
        yield

    async def health(request: Request) -> Response:
        script: ScoringScript = request.app.state.script
        return JSONResponse(
            {
                "status": "healthy",
                "model_name": script.model_name,
                "model_version": script.model_version,
                "deployment_id": deployment_id,
            }
        )

    async def score(request: Request) -> Response:
        script: ScoringScript = request.app.state.script
        request_id = _request_id(request)
        try:
            raw = script.validate(await request.body())
        except ScoringInputError as exc:
            extra = {"field": exc.field} if exc.field else {}
            return error_response(exc.status_code, exc.code, str(exc), request_id, **extra)
        headers = dict(request.headers)
        try:
            result = await run_in_threadpool(script.run, raw, headers)
        except Exception as exc:
            logger.exception("run() failed (request_id=%s)", request_id)
            message = f"the scoring script failed: {type(exc).__name__}: {exc}"
            return error_response(500, "scoring_failed", message, request_id)
        try:
            return result_response(result)
        except (TypeError, ValueError) as exc:
            logger.exception("run() returned a result that is not JSON (request_id=%s)", request_id)
            message = f"the scoring script returned a result that cannot be sent as JSON: {exc}"
            return error_response(500, "invalid_result", message, request_id)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = _HTTP_ERROR_CODES.get(exc.status_code, "http_error")
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return error_response(exc.status_code, code, message, _request_id(request), headers=exc.headers)

    return Starlette(
        routes=[
            Route("/", health, methods=["GET"]),
            Route("/score", score, methods=["POST"]),
        ],
        middleware=[Middleware(RequestContextMiddleware, deployment_id=deployment_id)],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
