"""ASGI middleware of the scoring server, outermost first: request context (ids, traceparent,
access log, metrics), key auth, body size limit. Plain ASGI classes: cheap on the hot path."""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from typing import Any

import orjson
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.serving import printlog
from shipyard.serving.errors import error_response
from shipyard.serving.printlog import REQUEST_ID as PRINT_ID
from shipyard.serving.server.auth import KeyAuth
from shipyard.serving.server.metrics import route_template

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


def first_headers(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by (lower-case) name, first value of each, as Starlette's `Headers`
    reads them; one pass over the raw list instead of a `Headers` object per lookup."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name not in found:
            found[name] = value
    return found


class RequestContext:
    """Request id (x-request-id / x-ms-request-id, echoed or made), W3C traceparent, one JSON
    access line per request, request metrics, and the id for print() lines from run(): the
    `RequestContextMiddleware` and the fast path of `POST /score` share this object."""

    def __init__(self, deployment_id: str | None = None, metrics: Any = None, logger: Any = None):
        self.deployment_id = deployment_id
        self.metrics = metrics
        self.logger = logger

    def begin(self, scope: Scope, headers: dict[bytes, bytes]) -> tuple[str, str | None, Any]:
        """(request id, valid traceparent or None, print-id token); records both in scope state."""
        given = (headers.get(b"x-request-id") or headers.get(b"x-ms-request-id") or b"").decode("latin-1")
        request_id = given if given and _ID_OK.match(given) else new_request_id()
        traceparent = headers.get(b"traceparent", b"").decode("latin-1")
        trace = traceparent if _TRACEPARENT_OK.match(traceparent) else None
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["traceparent"] = trace
        return request_id, trace, PRINT_ID.set(request_id)

    @staticmethod
    def id_headers(request_id: str, traceparent: str | None) -> list[tuple[bytes, bytes]]:
        """The response headers that echo the request's ids."""
        rid = request_id.encode("latin-1")
        out = [(b"x-request-id", rid), (b"x-ms-request-id", rid)]
        if traceparent is not None:
            out.append((b"traceparent", traceparent.encode("latin-1")))
        return out

    def end(self, scope: Scope, route: str, status: int, start: float, ids: tuple[str, str | None, Any]):
        """Flush the request's print() lines, then count it and write its access line."""
        request_id, traceparent, token = ids
        printlog.flush_request(request_id)
        PRINT_ID.reset(token)
        seconds = time.perf_counter() - start
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
            if traceparent is not None:
                record["trace_id"] = traceparent[3:35]
            if self.deployment_id:
                record["deployment_id"] = self.deployment_id
            self._log(orjson.dumps(record).decode())

    def _log(self, line: str) -> None:
        # logger.info() without its findCaller() stack walk: the caller is always this line.
        log = self.logger
        if log.isEnabledFor(logging.INFO):
            log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, line, None, None, "end"))


class RequestContextMiddleware:
    """`RequestContext` around every HTTP request that Starlette routes."""

    def __init__(self, app: ASGIApp, context: RequestContext):
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        ids = self.context.begin(scope, first_headers(scope))
        echo = self.context.id_headers(ids[0], ids[1])
        status = 500

        async def send_with_ids(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                out = MutableHeaders(scope=message)
                for name, value in echo:
                    out[name.decode("latin-1")] = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, send_with_ids)
        finally:
            self.context.end(scope, route_template(scope), status, start, ids)


def unauthorized(scope: Scope, headers: dict[bytes, bytes], auth: KeyAuth, metrics: Any = None):
    """None when the request carries a valid key, else the 401 response to send."""
    reason = auth.check(headers.get(b"authorization", b"").decode("latin-1") or None)
    if reason is None:
        return None
    if metrics is not None:
        metrics.rejected("unauthorized")
    return error_response(
        scope, 401, "unauthorized", reason, headers={"WWW-Authenticate": 'Bearer realm="shipyard"'}
    )


def payload_too_large(scope: Scope, max_bytes: int, metrics: Any = None):
    """The 413 response for a body over `max_bytes`."""
    if metrics is not None:
        metrics.rejected("body_too_large")
    mb = max_bytes / (1024 * 1024)
    return error_response(scope, 413, "payload_too_large", f"request body over {mb:g} MB (max_body_mb)")


def declared_too_large(headers: dict[bytes, bytes], max_bytes: int) -> bool:
    """True when the Content-Length header alone says the body is over the limit."""
    length = headers.get(b"content-length")
    return length is not None and length.isdigit() and int(length) > max_bytes


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
        response = unauthorized(scope, first_headers(scope), self.auth, self.metrics)
        if response is None:
            await self.app(scope, receive, send)
            return
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
        return payload_too_large(scope, self.max_bytes, self.metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if declared_too_large(first_headers(scope), self.max_bytes):
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
