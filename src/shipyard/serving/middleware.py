"""ASGI middleware of the scoring server, outermost first: request context (ids, traceparent,
access log, metrics), key auth, body size limit. Plain ASGI classes: cheap on the hot path."""

from __future__ import annotations

import itertools
import re
import secrets
import time
from typing import Any

import orjson
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.serving import printlog
from shipyard.serving.auth import KeyAuth
from shipyard.serving.errors import error_response
from shipyard.serving.metrics import route_template
from shipyard.serving.printlog import REQUEST_ID as PRINT_ID

REQUEST_ID = "x-request-id"
MS_REQUEST_ID = "x-ms-request-id"  # what Azure ML clients send and read
TRACEPARENT = "traceparent"
# A caller's request id is echoed only if it is short and printable: it lands in logs and headers.
_ID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# W3C trace context: version-traceid-parentid-flags.
_TRACEPARENT_OK = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
# Reachable without a key: liveness/readiness probes and the metrics scrape.
OPEN_PATHS = frozenset({"/", "/ping", "/health", "/v2/health/live", "/v2/health/ready", "/metrics"})


_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """A 32-hex-digit id unique to this process: a random prefix and a counter (uuid4 reads
    os.urandom for every request, which costs more than the rest of the id handling)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


class RequestContextMiddleware:
    """Request id (x-request-id / x-ms-request-id, echoed or made), W3C traceparent, one JSON
    access line per request, request metrics, and the id for print() lines from run()."""

    def __init__(
        self, app: ASGIApp, deployment_id: str | None = None, metrics: Any = None, logger: Any = None
    ):
        self.app = app
        self.deployment_id = deployment_id
        self.metrics = metrics
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = headers.get(REQUEST_ID) or headers.get(MS_REQUEST_ID) or ""
        request_id = given if given and _ID_OK.match(given) else new_request_id()
        traceparent = headers.get(TRACEPARENT, "")
        trace_ok = bool(_TRACEPARENT_OK.match(traceparent))
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["traceparent"] = traceparent if trace_ok else None
        token = PRINT_ID.set(request_id)
        status = 500
        start = time.perf_counter()

        async def send_with_ids(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                out = MutableHeaders(scope=message)
                out[REQUEST_ID] = request_id
                out[MS_REQUEST_ID] = request_id
                if trace_ok:
                    out[TRACEPARENT] = traceparent
            await send(message)

        try:
            await self.app(scope, receive, send_with_ids)
        finally:
            printlog.flush_request(request_id)
            PRINT_ID.reset(token)
            seconds = time.perf_counter() - start
            route = route_template(scope)
            if self.metrics is not None:
                self.metrics.observe_request(route, scope["method"], status, seconds)
            if self.logger is not None:
                record = {
                    "event": "request",
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "request_id": request_id,
                }
                if trace_ok:
                    record["trace_id"] = traceparent[3:35]
                if self.deployment_id:
                    record["deployment_id"] = self.deployment_id
                self.logger.info(orjson.dumps(record).decode())


class AuthMiddleware:
    """401 unless the request carries a valid key (probes and /metrics stay open)."""

    def __init__(self, app: ASGIApp, auth: KeyAuth, metrics: Any = None):
        self.app = app
        self.auth = auth
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        reason = self.auth.check(Headers(scope=scope).get("authorization"))
        if reason is None:
            await self.app(scope, receive, send)
            return
        if self.metrics is not None:
            self.metrics.rejected("unauthorized")
        response = error_response(
            scope, 401, "unauthorized", reason, headers={"WWW-Authenticate": 'Bearer realm="shipyard"'}
        )
        await response(scope, receive, send)


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """413 for request bodies over the limit, by Content-Length or while reading a chunked body."""

    def __init__(self, app: ASGIApp, max_bytes: int, metrics: Any = None):
        self.app = app
        self.max_bytes = max_bytes
        self.metrics = metrics

    def _too_large(self, scope: Scope):
        if self.metrics is not None:
            self.metrics.rejected("body_too_large")
        mb = self.max_bytes / (1024 * 1024)
        return error_response(scope, 413, "payload_too_large", f"request body over {mb:g} MB (max_body_mb)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._too_large(scope)(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._too_large(scope)(scope, receive, send)
