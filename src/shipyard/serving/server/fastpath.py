"""`POST /score`, the route every Azure ML client calls, answered without Starlette's per-request
layers (ServerErrorMiddleware, our three middleware classes, ExceptionMiddleware, Router, Request,
Response): the benchmark showed them costing more than the scoring itself.

`ServingApp` is the Starlette app with one change: a `POST /score` request (no root path) goes
to `FastScore`, which does what the middleware stack does, in the same order and with the same
answers: request ids and traceparent echoed, key auth (401), body limit (413 by Content-Length or
while reading; a compressed body decoded, 415 for a coding it does not know), then `ScoreRoute`,
then the access line and request metrics under the route
template ``/score``. Everything else, and `/score` before the model is loaded, goes through
Starlette. `ScoreRoute` (azureml/routes.py) is also the endpoint of the Starlette route, so the two
paths share their scoring and error answers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from shipyard.serving.server.codings import MalformedEncoding
from shipyard.serving.server.middleware import (
    BodyLimit,
    BodyTooLarge,
    KeyGate,
    RequestContext,
    first_headers,
)

logger = logging.getLogger("shipyard.serving")

SCORE_PATH = "/score"
_JSON = (b"content-type", b"application/json")


class ScoreAnswer(Protocol):
    """What `FastScore` calls once the model is loaded: azureml/routes.py's `ScoreRoute`."""

    async def answer(
        self, scope: Scope, read: Callable[[], Awaitable[bytes]], content_type: bytes | None = None
    ) -> bytes | Response:
        """The JSON body of the answer (200), or the error response; `read()` gives the body."""
        ...


async def _read_body(receive: Receive) -> bytes:
    """The whole request body, as `Request.body()` reads it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        if message["type"] != "http.request":
            continue
        chunk = message.get("body", b"")
        if not message.get("more_body", False):
            if not chunks:
                return chunk
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)


class FastScore:
    """Raw ASGI for `POST /score`: the middleware stack's work (the same `RequestContext`,
    `KeyGate` and `BodyLimit`, in the same order), then `ScoreRoute.answer`."""

    def __init__(self, context: RequestContext, gate: KeyGate | None, limit: BodyLimit):
        self.context = context
        self.gate = gate
        self.limit = limit
        self.route: ScoreAnswer | None = None  # set once the model is loaded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = first_headers(scope)
        ids = self.context.begin(scope, headers)
        status, started = 500, False
        try:
            response = await self._respond(scope, receive, headers)
            if isinstance(response, Response):
                status, out, body = response.status_code, response.raw_headers, response.body
            else:
                status, out, body = 200, [(b"content-length", b"%d" % len(response)), _JSON], response
            out.extend(ids.headers())
            started = True
            await send({"type": "http.response.start", "status": status, "headers": out})
            await send({"type": "http.response.body", "body": body})
        except Exception:
            # What Starlette's ServerErrorMiddleware does: a plain 500 (without our id headers),
            # and the exception goes on to the server, which logs it.
            if not started:
                await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise
        finally:
            self.context.end(scope, SCORE_PATH, status, ids)

    async def _respond(self, scope: Scope, receive: Receive, headers: dict[bytes, bytes]) -> bytes | Response:
        if self.gate is not None:
            refused = self.gate.refusal(scope, headers)
            if refused is not None:
                return refused
        refused = self.limit.refusal(scope, headers)
        if refused is not None:
            return refused
        assert self.route is not None
        counted = self.limit.counted(receive, scope, headers)
        try:
            return await self.route.answer(scope, lambda: _read_body(counted), headers.get(b"content-type"))
        except (BodyTooLarge, MalformedEncoding) as exc:
            return self.limit.error(scope, exc)


class ServingApp(Starlette):
    """The Starlette app, with `POST /score` dispatched to `fast` once the model is loaded."""

    fast: FastScore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast
        if (
            fast is not None
            and fast.route is not None
            and scope["type"] == "http"
            and scope["path"] == SCORE_PATH
            and scope["method"] == "POST"
            and not scope.get("root_path")
        ):
            scope["app"] = self
            await fast(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
