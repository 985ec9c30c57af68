"""ASGI middleware of the scoring server, outermost first: request context (ids, traceparent,
access log, metrics), key auth, body size limit. Plain ASGI classes: cheap on the hot path.

Each concern is one object (`RequestContext`, `KeyGate`, `BodyLimit`) that the middleware class
wraps and the fast path of `POST /score` (fastpath.py) calls directly, so both paths give the
same answers from the same code. The body limit also decodes compressed bodies (codings.py)."""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.serving import printlog
from shipyard.serving.errors import error_response
from shipyard.serving.printlog import REQUEST_ID as PRINT_ID
from shipyard.serving.server.auth import KeyAuth
from shipyard.serving.server.codings import (
    BodyDecoder,
    MalformedEncoding,
    UnsupportedEncoding,
    content_coding,
)
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


@dataclass(slots=True)
class RequestIds:
    """A request's ids while it is answered, from `RequestContext.begin` to `end`."""

    request_id: str
    traceparent: str | None  # a valid W3C traceparent, else None
    print_token: Any  # resets the request id of print() lines at the end
    start: float  # time.perf_counter() at the start

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The response headers that echo the request's ids."""
        rid = self.request_id.encode("latin-1")
        out = [(b"x-request-id", rid), (b"x-ms-request-id", rid)]
        if self.traceparent is not None:
            out.append((b"traceparent", self.traceparent.encode("latin-1")))
        return out


class RequestContext:
    """Request id (x-request-id / x-ms-request-id, echoed or made), W3C traceparent, one JSON
    access line per request, request metrics, and the id for print() lines from run(): the one
    implementation that `RequestContextMiddleware` and the fast path of `POST /score` both use."""

    def __init__(self, deployment_id: str | None = None, metrics: Any = None, logger: Any = None):
        self.deployment_id = deployment_id
        self.metrics = metrics
        self.logger = logger

    def begin(self, scope: Scope, headers: dict[bytes, bytes]) -> RequestIds:
        """The request's ids, also recorded in scope state and set for print() lines."""
        start = time.perf_counter()
        given = (headers.get(b"x-request-id") or headers.get(b"x-ms-request-id") or b"").decode("latin-1")
        request_id = given if given and _ID_OK.match(given) else new_request_id()
        traceparent = headers.get(b"traceparent", b"").decode("latin-1")
        trace = traceparent if _TRACEPARENT_OK.match(traceparent) else None
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["traceparent"] = trace
        return RequestIds(request_id, trace, PRINT_ID.set(request_id), start)

    def end(self, scope: Scope, route: str, status: int, ids: RequestIds) -> None:
        """Flush the request's print() lines, then count it and write its access line."""
        printlog.flush_request(ids.request_id)
        PRINT_ID.reset(ids.print_token)
        seconds = time.perf_counter() - ids.start
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
                "request_id": ids.request_id,
            }
            if ids.traceparent is not None:
                record["trace_id"] = ids.traceparent[3:35]
            if self.deployment_id:
                record["deployment_id"] = self.deployment_id
            self._log(orjson.dumps(record).decode())

    def _log(self, line: str) -> None:
        # logger.info() without its findCaller() stack walk: the caller is always this line.
        log = self.logger
        if log.isEnabledFor(logging.INFO):
            log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, line, None, None, "end"))


class KeyGate:
    """Key auth on every path but `OPEN_PATHS`: the one check that `AuthMiddleware` and the fast
    path of `POST /score` make (401), and that the health answer asks to tell what it may show."""

    def __init__(self, auth: KeyAuth, metrics: Any = None):
        self.auth = auth
        self.metrics = metrics

    def reason(self, headers: dict[bytes, bytes]) -> str | None:
        """Why the request's key is refused, or None when it carries a valid key."""
        return self.auth.check(headers.get(b"authorization", b"").decode("latin-1") or None)

    def refusal(self, scope: Scope, headers: dict[bytes, bytes]) -> Response | None:
        """None when the request may pass (an open path, or a valid key), else the 401 to send."""
        if scope["path"] in OPEN_PATHS:
            return None
        reason = self.reason(headers)
        if reason is None:
            return None
        if self.metrics is not None:
            self.metrics.rejected("unauthorized")
        return error_response(
            scope, 401, "unauthorized", reason, headers={"WWW-Authenticate": 'Bearer realm="shipyard"'}
        )


class BodyTooLarge(Exception):
    """Raised by `BodyLimit.counted` once the body read so far is over the limit (`decoded`: once
    it has been decompressed)."""

    def __init__(self, decoded: bool = False) -> None:
        super().__init__("decoded" if decoded else "sent")
        self.decoded = decoded


class BodyLimit:
    """Request bodies over `max_bytes` get 413: by Content-Length before reading, or as soon as the
    body read so far passes the limit. A compressed body (Content-Encoding, codings.py) is
    decoded as it is read, and its decoded size is held to the same limit. `BodyLimitMiddleware`
    and the fast path both use it."""

    def __init__(self, max_bytes: int, metrics: Any = None):
        self.max_bytes = max_bytes
        self.metrics = metrics

    def declared_too_large(self, headers: dict[bytes, bytes]) -> bool:
        """True when the Content-Length header alone says the body is over the limit."""
        length = headers.get(b"content-length")
        return length is not None and length.isdigit() and int(length) > self.max_bytes

    def response(self, scope: Scope, decoded: bool = False) -> Response:
        """The 413 answer (and its count in the metrics)."""
        if self.metrics is not None:
            self.metrics.rejected("body_too_large")
        mb = self.max_bytes / (1024 * 1024)
        what = "request body, decompressed," if decoded else "request body"
        return error_response(scope, 413, "payload_too_large", f"{what} over {mb:g} MB (max_body_mb)")

    def refusal(self, scope: Scope, headers: dict[bytes, bytes]) -> Response | None:
        """The answer to a request refused on its headers alone: 413 by Content-Length, 415 for a
        Content-Encoding the server does not decode; None when it may be read."""
        if self.declared_too_large(headers):
            return self.response(scope)
        coding = headers.get(b"content-encoding")
        if coding is not None and scope["method"] == "POST":
            try:
                content_coding(coding)
            except UnsupportedEncoding as exc:
                return error_response(scope, 415, "unsupported_encoding", str(exc))
        return None

    def error(self, scope: Scope, exc: BodyTooLarge | MalformedEncoding) -> Response:
        """The answer to a body refused while it was read: 413, or 400 for bad compressed data."""
        if isinstance(exc, BodyTooLarge):
            return self.response(scope, exc.decoded)
        return error_response(scope, 400, "invalid_encoding", str(exc))

    def counted(
        self, receive: Receive, scope: Scope | None = None, headers: dict[bytes, bytes] | None = None
    ) -> Receive:
        """`receive`, raising `BodyTooLarge` once the body's chunks add up to over the limit.

        Given the request's `scope` and `headers` (which have passed `refusal`), a POST body with
        a Content-Encoding is decoded as it arrives, and the scope's headers lose Content-Encoding
        and Content-Length, so that routes and run() see a plain body."""
        header = headers.get(b"content-encoding") if headers is not None else None
        if header is not None and scope is not None and scope["method"] == "POST":
            coding = content_coding(header)
            if coding is None:  # identity
                return self.counted(receive)
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k not in _CODING_HEADERS]
            return self._decoded(receive, BodyDecoder(coding))
        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        return counted_receive

    def _decoded(self, receive: Receive, decoder: BodyDecoder) -> Receive:
        sent = produced = 0

        async def decoded_receive() -> Message:
            nonlocal sent, produced
            message = await receive()
            if message["type"] != "http.request":
                return message
            chunk = message.get("body", b"")
            sent += len(chunk)
            if sent > self.max_bytes:
                raise BodyTooLarge
            body = decoder.feed(chunk, self.max_bytes - produced + 1)
            produced += len(body)
            if produced > self.max_bytes:
                raise BodyTooLarge(decoded=True)
            if not message.get("more_body", False):
                decoder.finish()
            return {**message, "body": body}

        return decoded_receive


_CODING_HEADERS = (b"content-encoding", b"content-length")


class RequestContextMiddleware:
    """`RequestContext` around every HTTP request that Starlette routes."""

    def __init__(self, app: ASGIApp, context: RequestContext):
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ids = self.context.begin(scope, first_headers(scope))
        echo = ids.headers()
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
            self.context.end(scope, route_template(scope), status, ids)


class AuthMiddleware:
    """`KeyGate` before every HTTP request that Starlette routes (when auth is on)."""

    def __init__(self, app: ASGIApp, gate: KeyGate):
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = self.gate.refusal(scope, first_headers(scope)) if scope["type"] == "http" else None
        if refused is None:
            await self.app(scope, receive, send)
            return
        await refused(scope, receive, send)


class BodyLimitMiddleware:
    """`BodyLimit` on every HTTP request that Starlette routes."""

    def __init__(self, app: ASGIApp, limit: BodyLimit):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = first_headers(scope)
        refused = self.limit.refusal(scope, headers)
        if refused is not None:
            await refused(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, self.limit.counted(receive, scope, headers), tracking_send)
        except (BodyTooLarge, MalformedEncoding) as exc:
            if not started:
                await self.limit.error(scope, exc)(scope, receive, send)
