"""Slow and excess connections, cut where uvicorn reads them: its httptools protocol, with timers.

uvicorn closes a connection that sits idle after a response (``timeout_keep_alive``), but nothing
bounds how long a request may take to arrive: a client that sends one header byte per second, or
a body one byte at a time, holds its connection (a file descriptor, a parser, for a body also an
ASGI task) for as long as it likes, and 500 of them held a server's fds at 514. This protocol adds:

- a header timeout (``header_timeout_s``): from the connection's start, or the end of the previous
  response on a kept-alive connection, until the request's headers are complete;
- a body timeout (``body_timeout_s``): from the end of the headers until the body is complete;
- a cap on the headers' size (64 KiB: request line and header fields), then 431;
- a cap on open connections per worker (``max_connections``): one more is answered 503 at once.

A request that runs out of time is answered ``408 Request Timeout`` (if no answer has started) and
its connection is closed; a request still inside the app then reads a disconnect (the app logs
it as 408). The answers are Azure ML style JSON error bodies, ``Connection: close``: what the
request's path expects cannot be known before its request line has arrived.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger("shipyard.serving")

MAX_HEADER_BYTES = 64 * 1024


def raw_answer(status: int, reason: str, code: str, message: str, retry_after: int | None = None) -> bytes:
    """A whole HTTP/1.1 error response that closes the connection, as bytes to write."""
    body = orjson.dumps({"error": {"code": code, "message": message, "request_id": None}})
    head = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body timeouts, a header size cap and a connection
    cap. Build a configured subclass with `guarded_protocol`."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 512

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._in_headers = True

    # -- the timers ------------------------------------------------------------------------------
    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, what: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        answered = cycle is not None and cycle.response_started and not cycle.response_complete
        if not answered:
            if what == "headers":
                message = f"the request's headers did not arrive within {self.header_timeout_s:g} s"
            else:
                message = f"the request's body did not arrive within {self.body_timeout_s:g} s"
            self.transport.write(raw_answer(408, "Request Timeout", "request_timeout", message))
        if cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False
        self.transport.close()

    def _refuse(self, status: int, reason: str, code: str, message: str, retry_after: int | None = None):
        self._disarm()
        self.transport.write(raw_answer(status, reason, code, message, retry_after))
        self.transport.close()

    # -- uvicorn's protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            message = f"the server has {self.max_connections} open connections (max_connections); retry later"
            self._refuse(503, "Service Unavailable", "too_many_connections", message, retry_after=1)
            return
        self._arm(self.header_timeout_s, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        # Past the cap and the headers still not complete (what the parser took is counted
        # from the start of the request, so a body sent with them does not count once complete).
        if self._in_headers and self._header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
            message = f"the request's headers are over {MAX_HEADER_BYTES // 1024} KiB"
            self._refuse(431, "Request Header Fields Too Large", "headers_too_large", message)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        if self._deadline is None:  # a pipelined request, after a response on this connection
            self._arm(self.header_timeout_s, "headers")

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        super().on_headers_complete()
        self._arm(self.body_timeout_s, "body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._in_headers = True
            self._header_bytes = 0
            self._arm(self.header_timeout_s, "headers")


def guarded_protocol(header_timeout_s: float, body_timeout_s: float, max_connections: int) -> type:
    """A `GuardedProtocol` subclass with these limits, for ``uvicorn.Config(http=...)``."""
    return type(
        "GuardedProtocol",
        (GuardedProtocol,),
        {
            "header_timeout_s": header_timeout_s,
            "body_timeout_s": body_timeout_s,
            "max_connections": max_connections,
        },
    )
