"""The server's JSON lines (access log, print() from run()) written in batches, off the event loop.

A `QueueHandler` + `QueueListener` handled every record twice (a copy of the record, then the
listener's handler, with its lock) and wrote each line with a write() of its own. `LineBuffer`
appends the line to a deque (thread-safe, no lock) and wakes a daemon thread only when the deque
was empty; the thread writes all the lines gathered meanwhile in one write(). Under load that is
one write per many requests; when idle a line goes out at once (tests and `tail -f` see it right
after the response). `close()` (logging.shutdown, at exit) writes the rest.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TextIO


class LineBuffer(logging.Handler):
    """A handler that writes each record's message as a line, batched by a background thread."""

    def __init__(self, stream: TextIO, interval: float = 0.05) -> None:
        super().__init__()
        self.stream = stream
        self.interval = interval
        self._lines: deque[str] = deque()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shipyard-log-writer", daemon=True)
        self._thread.start()

    def handle(self, record: logging.LogRecord) -> bool:
        # Handler.handle takes the handler's lock around emit(): not needed for a deque append.
        if self.filters and not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record's line (its message, or the formatted record if it carries a traceback)."""
        try:
            plain = record.exc_info is None and record.stack_info is None and self.formatter is None
            line = record.getMessage() if plain else self.format(record)
        except Exception:
            self.handleError(record)
            return
        wake = not self._lines
        self._lines.append(line)
        if wake:
            self._wake.set()

    def _run(self) -> None:
        while True:
            # The timeout bounds the delay of a line whose wake-up raced with a flush.
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Write the lines gathered so far."""
        with self._write_lock:
            lines = []
            try:
                while True:
                    lines.append(self._lines.popleft())
            except IndexError:
                pass
            if lines:
                try:
                    self.stream.write("\n".join(lines) + "\n")
                    self.stream.flush()
                except (OSError, ValueError):  # stderr closed: nowhere left to write
                    pass

    def close(self) -> None:
        """Write what is left. The writer thread lives on: logging.config.dictConfig (which
        uvicorn calls after we configured logging) closes every handler yet keeps them attached,
        so a closed LineBuffer must still take and write lines."""
        self.flush()
        super().close()
