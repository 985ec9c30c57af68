"""print() in a scoring script goes to the log, tagged with the request it served.

Azure ML's server hooks print() the same way, so a score.py that reports with print() stays
readable when many requests run at once. ``install()`` replaces ``sys.stdout`` once per process
with a writer that, while ``REQUEST_ID`` is set in the current context, collects text up to each
newline and logs every complete, non-blank line to ``shipyard.serving.user`` as the JSON
``{"event": "print", "request_id": ..., "message": ...}``. Outside a request (init(), the server
itself) text goes straight to the real stdout.

The request middleware sets ``REQUEST_ID``; run() executes in a worker thread through starlette's
``run_in_threadpool``, which runs the function in a copy of the caller's context, so the id
arrives with it. A line left without its newline when the request ends is logged by
``flush_request(request_id)`` (or by ``sys.stdout.flush()`` / ``print(..., flush=True)`` inside
the request).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from contextvars import ContextVar
from typing import Any, TextIO

REQUEST_ID: ContextVar[str | None] = ContextVar("shipyard_request_id", default=None)
USER_LOGGER = "shipyard.serving.user"

# A line longer than this is logged in pieces rather than held in memory without end.
_MAX_PENDING_CHARS = 64 * 1024
_install_lock = threading.Lock()


class RequestPrintWriter:
    """A stand-in for ``sys.stdout`` that routes request-time output to the log."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self._pending: dict[str, str] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._logger = logging.getLogger(USER_LOGGER)

    def write(self, text: str) -> int:
        """Log complete lines when in a request; otherwise write through to the real stdout."""
        request_id = REQUEST_ID.get()
        # A log handler that writes to sys.stdout would come back here: send that straight out.
        if request_id is None or getattr(self._local, "emitting", False):
            return self.stream.write(text) if self.stream is not None else len(text)
        with self._lock:
            *lines, rest = (self._pending.pop(request_id, "") + text).split("\n")
            if len(rest) > _MAX_PENDING_CHARS:
                lines.append(rest)
                rest = ""
            if rest:
                self._pending[request_id] = rest
        for line in lines:
            self._emit(request_id, line)
        return len(text)

    def writelines(self, lines: Any) -> None:
        """Write each string of an iterable."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Log the current request's unfinished line, then flush the real stdout."""
        request_id = REQUEST_ID.get()
        if request_id is not None and not getattr(self._local, "emitting", False):
            self.flush_request(request_id)
        if self.stream is not None:
            self.stream.flush()

    def flush_request(self, request_id: str) -> None:
        """Log what ``request_id`` printed without a final newline (call when the request ends)."""
        with self._lock:
            rest = self._pending.pop(request_id, "")
        if rest:
            self._emit(request_id, rest)

    def _emit(self, request_id: str, line: str) -> None:
        line = line.rstrip("\r")
        if not line.strip():
            return
        self._local.emitting = True
        try:
            record = {"event": "print", "request_id": request_id, "message": line}
            self._logger.info(json.dumps(record, ensure_ascii=False))
        finally:
            self._local.emitting = False

    def __getattr__(self, name: str) -> Any:
        # encoding, isatty(), fileno(), buffer, ...: those of the real stdout.
        if name == "stream":  # not set yet (half-built object): no recursion
            raise AttributeError(name)
        return getattr(self.stream, name)


def install() -> RequestPrintWriter:
    """Route print() during requests to the log; idempotent (returns the writer in place)."""
    with _install_lock:
        current = sys.stdout
        if isinstance(current, RequestPrintWriter):
            return current
        writer = RequestPrintWriter(current)
        sys.stdout = writer
        return writer


def uninstall() -> None:
    """Put the real stdout back (tests)."""
    with _install_lock:
        current = sys.stdout
        if isinstance(current, RequestPrintWriter):
            sys.stdout = current.stream


def flush_request(request_id: str) -> None:
    """Log the unfinished line ``request_id`` left, if the writer is installed (end of request)."""
    current = sys.stdout
    if isinstance(current, RequestPrintWriter):
        current.flush_request(request_id)
