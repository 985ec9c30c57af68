"""Images and files sent to an entry script: what run() receives for a body that carries them.

Three forms of request carry binary data to `POST /score`:

- a JSON body in which a value is ``{"b64": "<base64>"}`` (TF Serving's and KServe's V1
  convention for binary values in JSON), e.g. ``{"data": [{"b64": "iVBORw0..."}]}``;
- an image body, ``Content-Type: image/png`` or ``image/jpeg``: one image, read as if it were
  ``{"<input>": [{"b64": <the body>}]}`` (``<input>``: the signature's input, else ``data``);
- ``multipart/form-data``: every file part goes into a list under its field name (several files
  under ``data`` are several rows), every text field is a string (a list if repeated).

For such a body run() gets a dict, not the body's text: the JSON with each ``{"b64": ...}``
replaced by its value, ``{"data": [image]}``, or the form's fields. A value is decoded to a numpy
array of uint8 pixels when it is a row of an image input of the bundle's signature (rows of shape
``[H, W]``: grayscale; ``[H, W, C]``, C 1, 3 or 4: L, RGB or RGBA), and passed as the bytes sent
otherwise (no signature, another field): decoding is the script's business then. The arrays are
then checked against the signature's shape like any row (an image of another size is a 422
naming it); images are not resized.

Limits: PNG and JPEG only (Pillow, told to open nothing else); the images decoded for one
request hold at most `max_image_pixels` pixels together (413), checked on their headers before
their pixels are decoded, so a decompression bomb costs nothing; a file that is not a readable
PNG or JPEG, or base64 that is not, is a 400 naming the value. Decoding runs in the scoring slot
(its thread and timeout), never on the event loop.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shipyard.serving.bounds import BodyTooLargeError
from shipyard.serving.validation import ArrayInput, MalformedBodyError, ScoringInputError

IMAGE_TYPES = (b"image/png", b"image/jpeg", b"image/jpg")
MULTIPART = b"multipart/form-data"
B64 = "b64"
# In a JSON body that may hold a {"b64": ...} value (a substring search: cheap).
B64_KEY = b'"b64"'
# What Pillow may open: the formats the server documents, nothing of its other decoders.
_FORMATS = ("PNG", "JPEG")
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


class UploadError(MalformedBodyError):
    """A file, image or base64 value that cannot be read (HTTP 400)."""

    code = "invalid_upload"


class UnsupportedUpload(ScoringInputError):
    """A body this server does not take as a file upload (HTTP 415)."""

    code = "unsupported_media_type"
    status_code = 415


def upload_kind(content_type: bytes | None) -> bytes | None:
    """`image` or `multipart` for a body that carries files by its Content-Type, else None (the
    JSON path). UnsupportedUpload for another image type."""
    if content_type is None or not content_type.startswith((b"image/", b"multipart/")):
        return None
    mime = content_type.split(b";", 1)[0].strip().lower()
    if mime in IMAGE_TYPES:
        return b"image"
    if mime == MULTIPART:
        return b"multipart"
    shown = mime.decode("latin-1")[:60]
    raise UnsupportedUpload(
        f"{shown} bodies are not taken; send image/png, image/jpeg or multipart/form-data", "body"
    )


@dataclass
class Uploads:
    """How one bundle's run() gets uploads: its image inputs (from the signature) and the limit."""

    image_inputs: dict[str, ArrayInput]
    default_name: str
    max_pixels: int

    @classmethod
    def for_signature(cls, checks: list[ArrayInput], max_pixels: int) -> Uploads:
        """The inputs whose rows are images ([H, W] or [H, W, C] with C in 1, 3, 4)."""
        images = {
            check.name: check
            for check in checks
            if len(check.row_shape) == 2 or (len(check.row_shape) == 3 and check.row_shape[2] in _MODES)
        }
        return cls(images, checks[0].name if checks else "data", max_pixels)

    def image_body(self, body: bytes) -> Callable[[], dict[str, Any]]:
        """An image body as run()'s argument, decoded when called (in the scoring slot)."""
        name = self.default_name
        return lambda: {name: [_Budget(self).value(body, name, f"{name}[0]")]}

    def json_payload(self, payload: Any) -> Callable[[], Any] | None:
        """The parsed JSON with its {"b64": ...} values decoded, when called; None when it has none."""
        if not _find_b64(payload):
            return None
        return lambda: _Budget(self).replace(payload)

    async def form(self, content_type: bytes, body: bytes) -> Callable[[], dict[str, Any]]:
        """A multipart body's fields (parsed now, files decoded when called)."""
        from starlette.datastructures import Headers, UploadFile
        from starlette.formparsers import MultiPartException, MultiPartParser

        async def stream() -> Any:
            yield body

        headers = Headers(raw=[(b"content-type", content_type)])
        try:
            form = await MultiPartParser(headers, stream()).parse()
        except MultiPartException as exc:
            raise UploadError(f"body: the multipart form cannot be read: {exc.message}", "body") from None
        except Exception as exc:  # python-multipart's own errors on a broken body
            raise UploadError(f"body: the multipart form cannot be read: {exc}", "body") from None
        files: dict[str, list[bytes]] = {}
        texts: dict[str, list[str]] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                files.setdefault(key, []).append(await value.read())
                await value.close()
            else:
                texts.setdefault(key, []).append(value)
        if not files and not texts:
            raise UploadError("body: the multipart form has no fields", "body")

        def fields() -> dict[str, Any]:
            budget = _Budget(self)
            result: dict[str, Any] = {k: v[0] if len(v) == 1 else v for k, v in texts.items()}
            for key, contents in files.items():
                result[key] = [budget.value(raw, key, f"{key}[{i}]") for i, raw in enumerate(contents)]
            return result

        return fields


def _find_b64(value: Any) -> bool:
    if isinstance(value, dict):
        if _is_b64(value):
            return True
        return any(_find_b64(v) for v in value.values())
    if isinstance(value, list):
        return any(_find_b64(v) for v in value)
    return False


def _is_b64(value: Any) -> bool:
    return type(value) is dict and len(value) == 1 and type(value.get(B64)) is str


class _Budget:
    """The decoding of one request's values, counting its pixels against `max_pixels`."""

    def __init__(self, uploads: Uploads) -> None:
        self.uploads = uploads
        self.pixels = 0

    def replace(self, value: Any, field: str | None = None, where: str = "body") -> Any:
        """`value` with every {"b64": ...} decoded; a row of an image input (`field`) to an array."""
        if _is_b64(value):
            try:
                raw = base64.b64decode(value[B64], validate=True)
            except (binascii.Error, ValueError):
                raise UploadError(f"{where}.b64: not valid base64", where) from None
            return self.value(raw, field, where)
        if isinstance(value, dict):
            top = where == "body"
            return {
                k: self.replace(v, k if top else None, k if top else f"{where}.{k}") for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.replace(v, field, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    def value(self, raw: bytes, field: str | None, where: str) -> Any:
        """The bytes sent, or their image as an array when `field` is an image input."""
        check = self.uploads.image_inputs.get(field) if field is not None else None
        if check is None:
            return raw
        return self._image(raw, check, where)

    def _image(self, raw: bytes, check: ArrayInput, where: str) -> Any:
        import numpy as np
        from PIL import Image

        try:
            with warnings.catch_warnings():
                # Pillow's own bomb warning; the pixel budget below is the server's bound.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(raw), formats=_FORMATS)
        except Image.DecompressionBombError:
            raise self._too_large(where, "it has more pixels than Pillow opens") from None
        except Exception as exc:
            raise UploadError(f"{where}: not a PNG or JPEG image ({_reason(exc)})", where) from None
        with image:
            width, height = image.size
            self.pixels += width * height
            if self.pixels > self.uploads.max_pixels:
                raise self._too_large(
                    where, f"{width}x{height} pixels take this request's images past the limit"
                )
            channels = check.row_shape[2] if len(check.row_shape) == 3 else None
            try:
                array = np.asarray(image.convert(_MODES[channels or 1]))
            except Exception as exc:  # truncated or corrupt pixel data
                raise UploadError(f"{where}: the image cannot be decoded ({_reason(exc)})", where) from None
        return array.reshape(*array.shape[:2], 1) if channels == 1 else array

    def _too_large(self, where: str, why: str) -> BodyTooLargeError:
        return BodyTooLargeError(
            f"{where}: image too large: {why}; this server decodes at most {self.uploads.max_pixels} "
            "pixels per request (serving.max_image_pixels)",
            where,
        )


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def described(value: Any) -> Any:
    """`value` with arrays and bytes replaced by what they are (for data capture)."""
    if isinstance(value, bytes):
        return {"bytes": len(value)}
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return {"array": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, dict):
        return {k: described(v) for k, v in value.items()}
    if isinstance(value, list):
        return [described(v) for v in value]
    return value
