"""Request bodies sent compressed (`Content-Encoding: gzip` or `deflate`), decoded as they arrive.

Clients compress large bodies (tritonclient's ``request_compression_algorithm``, ``curl
--data-binary @x.json.gz``), so every scoring route reads them decoded: the body limit
(middleware.BodyLimit) feeds each received chunk through a `BodyDecoder` and counts the *decoded*
bytes against `max_body_mb`, asking the decoder for at most one byte more than the room left. A
few kilobytes of gzip that would inflate to gigabytes therefore stop at the limit with a 413,
having cost at most the limit in memory. A body without Content-Encoding is not touched (the
hot path does no work for this).

`deflate` is the zlib format (RFC 9110, and what tritonclient and browsers send); a raw deflate
stream, which some clients send under the same name, is recognised by its missing zlib header.
A gzip body may hold several members (concatenated .gz files), as `gzip -d` reads them.
"""

from __future__ import annotations

import zlib

GZIP = "gzip"
DEFLATE = "deflate"
# `x-gzip` is gzip's old name, which RFC 9110 says a recipient should treat as gzip.
_CODINGS = {"gzip": GZIP, "x-gzip": GZIP, "deflate": DEFLATE}
_IDENTITY = ("", "identity")
_GZIP_WBITS = 16 + zlib.MAX_WBITS
SUPPORTED = "gzip or deflate"


class UnsupportedEncoding(Exception):
    """A Content-Encoding the server does not decode (HTTP 415)."""


class MalformedEncoding(Exception):
    """A body that is not valid data of its Content-Encoding (HTTP 400)."""


def content_coding(header: bytes) -> str | None:
    """The coding a Content-Encoding header names (`gzip`, `deflate`), None for identity, or
    UnsupportedEncoding (several codings, or one the server does not know)."""
    text = header.decode("latin-1").strip().lower()
    if text in _IDENTITY:
        return None
    coding = _CODINGS.get(text)
    if coding is None:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise UnsupportedEncoding(
            f"Content-Encoding '{shown}' is not supported; send the body uncompressed or with one "
            f"coding, {SUPPORTED}"
        )
    return coding


def _zlib_header(head: bytes) -> bool:
    """True when the two bytes begin a zlib stream (RFC 1950: method 8, header checksum)."""
    return head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0


class BodyDecoder:
    """Decodes one request body, chunk by chunk, never producing more than it is asked for."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._pending = b""  # deflate: the first byte, until the second says zlib or raw
        self._inflate: zlib._Decompress | None = zlib.decompressobj(_GZIP_WBITS) if coding == GZIP else None

    def feed(self, chunk: bytes, room: int) -> bytes:
        """The decoded bytes of `chunk`, at most `room` of them (the caller refuses the body once
        its decoded size passes its limit, so what is left undecoded never matters)."""
        if self._inflate is None:
            chunk = self._pending + chunk
            if len(chunk) < 2:
                self._pending = chunk
                return b""
            self._pending = b""
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS if _zlib_header(chunk) else -zlib.MAX_WBITS)
        out: list[bytes] = []
        while chunk and room > 0:
            try:
                data = self._inflate.decompress(chunk, room)
            except zlib.error as exc:
                raise MalformedEncoding(f"the body is not valid {self.coding} data ({exc})") from None
            out.append(data)
            room -= len(data)
            if not self._inflate.eof:
                break
            # The end of a stream: a gzip body may go on with another member, nothing else may.
            chunk = self._inflate.unused_data
            if chunk and self.coding != GZIP:
                raise MalformedEncoding(
                    f"the body has {len(chunk)} bytes after the end of its {self.coding} data"
                )
            if chunk:
                self._inflate = zlib.decompressobj(_GZIP_WBITS)
        return b"".join(out)

    def finish(self) -> None:
        """MalformedEncoding unless the body ended where its compressed data ends."""
        if self._inflate is None or not self._inflate.eof:
            raise MalformedEncoding(f"the body ends before its {self.coding} data does (truncated?)")


# Smaller answers are sent as they are: compressing them costs more than it saves.
MIN_COMPRESSED = 1024


def encode_response(body: bytes, accept_encoding: str) -> tuple[bytes, str | None]:
    """`body` compressed with the first of gzip or deflate that `accept_encoding` accepts (q > 0),
    and the coding; the body itself and None when it is small or neither is accepted."""
    if len(body) < MIN_COMPRESSED:
        return body, None
    for item in accept_encoding.lower().split(","):
        name, _, params = item.strip().partition(";")
        quality = params.strip().removeprefix("q=")
        if quality and quality != params.strip() and _is_zero(quality):
            continue
        coding = _CODINGS.get(name.strip())
        if coding == GZIP:
            return zlib_compress(body, _GZIP_WBITS), GZIP
        if coding == DEFLATE:
            return zlib_compress(body, zlib.MAX_WBITS), DEFLATE
    return body, None


def _is_zero(quality: str) -> bool:
    try:
        return float(quality) == 0
    except ValueError:
        return True


def zlib_compress(body: bytes, wbits: int) -> bytes:
    """`body` as a gzip (wbits 31) or zlib (15) stream, at a fast level: answers are sent once."""
    packer = zlib.compressobj(1, zlib.DEFLATED, wbits)
    return packer.compress(body) + packer.flush()
