"""Request bodies checked before a model sees them: JSON parsing and the manifest's signature.

A manifest signature lists inputs by name with a shape whose first size is the rows (-1): ``[-1]``
(a flat list of numbers), ``[-1, N]`` (rows of N numbers), ``[-1, 8, 8]`` (rows that are 8x8
arrays: images), and so on; a size of -1 after the first is free. Every row is checked against the
whole shape, value by value, so that a bad request answers a 4xx naming the field at fault
(``data[3][1]``, ``data[0][7]``) instead of a stack trace from inside the model. A body whose
inputs the signature does not describe is not checked (no signature, no shape). The errors
defined here are the base of every input error the contracts raise.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from shipyard.errors import ShipyardError


class ScoringInputError(ShipyardError):
    """A request body does not match what the model expects (HTTP 422)."""

    code = "invalid_input"
    status_code = 422

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class MalformedBodyError(ScoringInputError):
    """A request body is not valid (UTF-8) JSON (HTTP 400)."""

    code = "invalid_json"
    status_code = 400


@dataclass(frozen=True)
class ArrayInput:
    """One signature input: a list of rows, each of shape `row_shape` (``()``: a number, ``(N,)``:
    N numbers, ``(8, 8)``: an 8x8 array); a size of None is free."""

    name: str
    row_shape: tuple[int | None, ...]
    integer: bool = False

    @property
    def flat(self) -> bool:
        """True for a flat list of numbers (shape [-1])."""
        return not self.row_shape

    @property
    def width(self) -> int | None:
        """N for rows of N numbers (shape [-1, N]), else None."""
        return self.row_shape[0] if len(self.row_shape) == 1 else None

    def tensor_spec(self) -> dict[str, Any]:
        """This input as a tensor spec {"name", "datatype", "shape"}."""
        shape = [-1, *(-1 if size is None else size for size in self.row_shape)]
        return {"name": self.name, "datatype": "INT64" if self.integer else "FP64", "shape": shape}


def _is_number(value: Any, integer: bool) -> bool:
    """A JSON number the model can take: finite, and for float inputs within float range."""
    if isinstance(value, bool):
        return False
    if integer:
        return isinstance(value, int)
    if isinstance(value, int):
        return abs(value) <= sys.float_info.max
    return isinstance(value, float) and math.isfinite(value)


_FLOAT_MAX = sys.float_info.max


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (use a finite number)")


def _describe(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), "number")


def parse_signature(signature: Mapping[str, Any] | None) -> list[ArrayInput]:
    """The inputs of a manifest signature that can be checked: shapes [-1, ...] of integer sizes."""
    checks: list[ArrayInput] = []
    inputs = (signature or {}).get("inputs") or {}
    if not isinstance(inputs, Mapping):
        return checks
    for name, spec in inputs.items():
        if not isinstance(spec, Mapping):
            continue
        shape = spec.get("shape")
        integer = str(spec.get("dtype", "")).startswith("int")
        if not isinstance(shape, list) or not shape or shape[0] != -1:
            continue
        if not all(type(size) is int for size in shape[1:]):
            continue
        row_shape = tuple(size if size > 0 else None for size in shape[1:])
        checks.append(ArrayInput(name, row_shape, integer=integer))
    return checks


def validate_payload(payload: Any, checks: list[ArrayInput]) -> None:
    """Check a parsed body against the signature; raise ScoringInputError naming the bad field."""
    if not checks:
        return
    if not isinstance(payload, dict):
        raise ScoringInputError(f"body: expected a JSON object, got {_type_name(payload)}", "body")
    for check in checks:
        name = check.name
        kind = "integers" if check.integer else "numbers"
        if name not in payload:
            raise ScoringInputError(f"{name}: required field is missing", name)
        rows = payload[name]
        if not isinstance(rows, list):
            raise ScoringInputError(f"{name}: expected a list of rows, got {_type_name(rows)}", name)
        if not rows:
            raise ScoringInputError(f"{name}: expected at least one row, got an empty list", name)
        if check.flat:
            _check_numbers(rows, check.integer, name, f"one of {kind}")
            continue
        if len(check.row_shape) > 1:
            for i, row in enumerate(rows):
                _check_array(row, check, f"{name}[{i}]")
            continue
        width, integer = check.width, check.integer
        for i, row in enumerate(rows):
            if type(row) is list and (width is None or len(row) == width) and _all_numbers(row, integer):
                continue
            where = f"{name}[{i}]"
            if not isinstance(row, list):
                raise ScoringInputError(f"{where}: expected a list of {kind}, got {_type_name(row)}", where)
            if width is not None and len(row) != width:
                raise ScoringInputError(f"{where}: expected {width} {kind}, got {len(row)}", where)
            _check_numbers(row, integer, where)


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("*" if size is None else str(size) for size in shape) + "]"


def _check_array(node: Any, check: ArrayInput, where: str, depth: int = 0) -> None:
    """One row of an N-d input (or a part of it, `depth` sizes in): nested lists, or an array such
    as a decoded image, of the rest of the input's row shape."""
    shape = check.row_shape[depth:]
    whole = f"each row of '{check.name}' has shape {_shape_text(check.row_shape)}"
    if hasattr(node, "shape") and hasattr(node, "dtype"):  # a numpy array, without importing numpy
        fits = len(node.shape) == len(shape) and all(
            want is None or want == got for want, got in zip(shape, node.shape, strict=True)
        )
        if not fits:
            got = _shape_text(tuple(node.shape))
            raise ScoringInputError(
                f"{where}: expected an array of shape {_shape_text(shape)}, got {got}", where
            )
        if node.dtype.kind not in ("iu" if check.integer else "iuf"):
            raise ScoringInputError(f"{where}: expected numbers, got an array of {node.dtype}", where)
        return
    size, last = shape[0], len(shape) == 1
    what = ("integers" if check.integer else "numbers") if last else "arrays"
    if type(node) is not list:
        count = f"{size} " if size is not None else ""
        raise ScoringInputError(
            f"{where}: expected a list of {count}{what} ({whole}), got {_type_name(node)}", where
        )
    if size is not None and len(node) != size:
        raise ScoringInputError(f"{where}: expected {size} {what}, got {len(node)} ({whole})", where)
    if not last:
        for j, child in enumerate(node):
            _check_array(child, check, f"{where}[{j}]", depth + 1)
        return
    _check_numbers(node, check.integer, where)


def _check_numbers(values: list[Any], integer: bool, where: str, expected: str = "a number") -> None:
    """Every value one the model can take (the fast check first); else the first bad one, named."""
    if _all_numbers(values, integer):
        return
    for j, value in enumerate(values):
        if not _is_number(value, integer):
            cell = f"{where}[{j}]"
            raise ScoringInputError(f"{cell}: expected {expected}, got {_describe(value)}", cell)


def _all_numbers(values: list[Any], integer: bool) -> bool:
    """`_is_number` for every value, by exact type: what a parsed body holds. Per request on the
    hot path, so no call per value; False also for what only `_is_number` can judge (an int
    subclass), and the caller then walks the values one by one to name the bad one."""
    if integer:
        for v in values:
            if type(v) is not int:
                return False
        return True
    for v in values:
        if type(v) is float:
            if v - v != 0.0:  # NaN or infinity
                return False
        elif type(v) is not int or not -_FLOAT_MAX <= v <= _FLOAT_MAX:
            return False
    return True


# 19 digits in a row may be an integer past 64 bits, which orjson reads as a float, json as an int.
_LONG_DIGITS = re.compile(rb"\d{19}")


def parse_body(raw_body: str | bytes) -> tuple[str, Any]:
    """Decode and parse a request body; raise MalformedBodyError if it is not UTF-8 JSON."""
    if isinstance(raw_body, bytes) and not _LONG_DIGITS.search(raw_body):
        # orjson first (the json module with parse_constant builds a decoder per call). It
        # refuses what json refuses (NaN, Infinity, bad UTF-8), and more (1e400, lone
        # surrogates): then the json module below parses, or says what is wrong, as before.
        try:
            payload = orjson.loads(raw_body)
        except orjson.JSONDecodeError:
            pass
        else:
            return raw_body.decode("utf-8"), payload
    if isinstance(raw_body, bytes):
        try:
            raw_body = raw_body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedBodyError(f"body is not valid UTF-8: {exc.reason} at byte {exc.start}") from exc
    if not raw_body.strip():
        raise MalformedBodyError('body is empty; send a JSON object such as {"data": [[...]]}')
    try:
        # NaN and Infinity are not JSON; Python's parser would accept them (and 1e400 as inf).
        return raw_body, json.loads(raw_body, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise MalformedBodyError(
            f"body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    except RecursionError:
        # Only without the server's depth bound (serving/bounds.py), e.g. from the Python API.
        raise MalformedBodyError("body is not valid JSON: nested too deeply to parse") from None
    except ValueError as exc:
        raise MalformedBodyError(f"body is not valid JSON: {exc}") from exc
