"""Redaction: replace secret values, as written and in their common encodings, by `***`.

A step gets its secrets in its environment; a script that prints one, or a library that logs a
URL with a token in its query string or a JSON body with a password, puts it in the step's log.
The redactor is the last line of defence for what Shipyard itself keeps (captured output, its
own log records); it is not a sandbox: see docs/secrets.md for what it cannot catch.

Values shorter than MIN_LENGTH are not redacted: replacing every "abc" or "1" in a log would
destroy the log and tell a reader the value anyway. Such values are reported in `skipped` and
logged as a warning that names the secret, never the value.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_LENGTH = 4
CHUNK = 1 << 20

log = logging.getLogger(__name__)


def encodings(value: str) -> set[str]:
    """`value` as it may appear in text: plain, URL-quoted (path, query, form) and JSON-escaped."""
    json_ascii = json.dumps(value)[1:-1]
    json_utf8 = json.dumps(value, ensure_ascii=False)[1:-1]
    return {value, quote(value, safe=""), quote(value), quote_plus(value), json_ascii, json_utf8}


class Redactor:
    """Holds secret values (in memory only) and masks them in text, bytes and files."""

    def __init__(self, values: Mapping[str, str] | Iterable[str]) -> None:
        named = dict(values) if isinstance(values, Mapping) else {f"#{i}": v for i, v in enumerate(values)}
        self.skipped: list[str] = sorted(name for name, value in named.items() if len(value) < MIN_LENGTH)
        for name in self.skipped:
            log.warning(
                "secret %s is shorter than %d characters and is not redacted from logs", name, MIN_LENGTH
            )
        variants = {v for value in named.values() if len(value) >= MIN_LENGTH for v in encodings(value)}
        # Longest first, so a value that contains another is masked whole.
        ordered = sorted(variants, key=lambda v: (-len(v.encode()), v))
        self._max_bytes = max((len(v.encode()) for v in ordered), default=0)
        self._text = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._bytes = re.compile(b"|".join(re.escape(v.encode()) for v in ordered)) if ordered else None

    def __repr__(self) -> str:
        return f"<Redactor skipped={self.skipped}>"

    def __bool__(self) -> bool:
        return self._text is not None

    def redact(self, text: str) -> str:
        """`text` with every occurrence of a value (or an encoding of it) replaced by ***."""
        return self._text.sub(MASK, text) if self._text else text

    def contains(self, text: str) -> bool:
        return bool(self._text and self._text.search(text))

    def redact_file(self, path: Path | str) -> int:
        """Redact a file in place, a chunk at a time; returns how many occurrences were masked.

        The file is rewritten beside itself and renamed over the original (same mode), so a
        reader never sees half a file. Call it once the writer has closed the file: a process
        still appending would keep writing to the replaced inode."""
        path = Path(path)
        if self._bytes is None:
            return 0
        with open(path, "rb") as src:
            if not any(True for _ in self._scan(src)):
                return 0
        mode = path.stat().st_mode & 0o7777
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".redact")
        count = 0
        try:
            with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
                for piece, masked in self._stream(src):
                    dst.write(piece)
                    count += masked
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return count

    def file_contains(self, path: Path | str) -> bool:
        """Whether the file holds a value (or an encoding of it), read a chunk at a time."""
        if self._bytes is None:
            return False
        with open(path, "rb") as src:
            return any(True for _ in self._scan(src))

    def _scan(self, src: BinaryIO) -> Iterator[None]:
        """Yields once per chunk that holds a match (chunks overlap by the longest variant)."""
        assert self._bytes is not None
        tail = b""
        while chunk := src.read(CHUNK):
            buffer = tail + chunk
            if self._bytes.search(buffer):
                yield None
                return
            tail = buffer[-(self._max_bytes - 1) :] if self._max_bytes > 1 else b""

    def _stream(self, src: BinaryIO) -> Iterator[tuple[bytes, int]]:
        """(redacted bytes, matches) per chunk. A match can only start in the last max-1 bytes of a
        buffer if it might run past it, so those bytes wait for the next chunk."""
        assert self._bytes is not None
        keep = self._max_bytes - 1
        carry = b""
        while True:
            chunk = src.read(CHUNK)
            buffer = carry + chunk
            last = not chunk
            safe = len(buffer) if last else max(len(buffer) - keep, 0)
            out: list[bytes] = []
            pos = count = 0
            for match in self._bytes.finditer(buffer):
                if match.start() >= safe:
                    break
                out += [buffer[pos : match.start()], MASK.encode()]
                pos, count = match.end(), count + 1
            cut = max(pos, safe)
            out.append(buffer[pos:cut])
            carry = buffer[cut:]
            yield b"".join(out), count
            if last:
                return


class RedactingFilter(logging.Filter):
    """A logging filter that masks values in a record's message, exception and stack text.

    Attach it to a *handler* (`handler.addFilter(...)`): filters on a logger do not see records
    that propagate from its child loggers. It formats the record's arguments into the message
    (so an argument holding a value is masked too) and returns True: it never drops a record."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.redactor:
            return True
        record.msg = self.redactor.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            # The text replaces the exception: handlers that render exc_info themselves would show it raw.
            record.exc_text = self.redactor.redact(record.exc_text)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True
