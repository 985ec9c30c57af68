"""Typed tensors of the Open Inference Protocol (KServe V2) in their JSON form.

A request input is ``{"name", "shape", "datatype", "data"}``; ``data`` holds the elements in
row-major order, either flat (``[1, 2, 3, 4]`` for shape ``[2, 2]``) or in the tensor's natural
nesting (``[[1, 2], [3, 4]]``). Decoding checks the shape, that the element count matches it,
and that every value is of the JSON type the datatype needs and fits its range, and raises
`TensorError` naming the input and the element otherwise, so that the route can answer 400.

Values are checked strictly rather than coerced (the protocol allows either): a ``true`` in an
FP64 tensor or ``1.5`` in an INT64 tensor is far more likely a client bug than an intent.

A tensor sent in the binary tensor data extension has the same header (name, shape, datatype)
with ``parameters.binary_data_size`` instead of ``data``: `tensor_header` reads it for both forms,
and binary.py decodes its bytes. An output (`OutputTensor`) is sent in either form too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shipyard.errors import ShipyardError

# Datatype -> numpy dtype of the decoded array. BYTES elements stay Python str (JSON strings).
DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
INTEGER_TYPES = frozenset(name for name in DTYPES if name.startswith(("INT", "UINT")))
FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64", "BF16"})  # BF16: binary only
NUMERIC_TYPES = INTEGER_TYPES | FLOAT_TYPES

# The JSON values (as orjson/json decode them) each datatype accepts; bool is not an int here.
_ACCEPTED: dict[str, frozenset[type]] = {
    **{name: frozenset({int}) for name in INTEGER_TYPES},
    **{name: frozenset({int, float}) for name in FLOAT_TYPES},
    "BOOL": frozenset({bool}),
    "BYTES": frozenset({str}),
}
_EXPECTED = {
    **{name: "an integer" for name in INTEGER_TYPES},
    **{name: "a number" for name in FLOAT_TYPES},
    "BOOL": "true or false",
    "BYTES": "a string",
}
# Known to the protocol but not sent as JSON: there is no standard JSON form of a bfloat16.
BINARY_ONLY = frozenset({"BF16"})


class TensorError(ShipyardError):
    """A tensor in a request is malformed: bad shape, datatype, element count or value (HTTP 400)."""

    status_code = 400


@dataclass
class Tensor:
    """A decoded, validated request input: its elements in row-major order (``values``), as a
    numpy array of its shape (``array``) and as rows for `Servable.predict_rows` (``rows()``).

    The array and the rows are built on first use: an FP64 tensor of JSON floats, the common
    case, becomes rows without a round trip through numpy.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    values: list[Any] | None  # None for a binary tensor, whose array is given
    _array: np.ndarray | None = field(default=None, repr=False)
    _rows: list[Any] | None = field(default=None, repr=False)

    @property
    def array(self) -> np.ndarray:
        """The elements as a numpy array of the tensor's datatype and shape."""
        if self._array is None:
            self._array = np.array(self.values, dtype=DTYPES[self.datatype]).reshape(self.shape)
        return self._array

    def rows(self) -> list[Any]:
        """The tensor split along its first (batch) dimension, as plain Python values:
        shape [N] gives N scalars, [N, F] gives N lists of F values, and so on."""
        if self._rows is None:
            self._rows = self.array.tolist()
        return self._rows


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    text = repr(value) if not isinstance(value, bool) else str(value).lower()
    return text if len(text) <= 40 else text[:37] + "..."


def _index(position: int, shape: tuple[int, ...], nested: bool) -> str:
    if not nested or len(shape) < 2:
        return f"data[{position}]"
    return "data" + "".join(f"[{int(i)}]" for i in np.unravel_index(position, shape))


def _check_shape(where: str, shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, list) or not shape:
        raise TensorError(f"{where}: 'shape' must be a non-empty array of sizes, got {_describe(shape)}")
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise TensorError(f"{where}: 'shape' sizes must be integers >= 0, got {shape}")
    return tuple(shape)


def _flatten(where: str, data: Any, shape: tuple[int, ...]) -> tuple[list[Any], bool]:
    """The elements in row-major order, and whether ``data`` was nested."""
    if not isinstance(data, list):
        raise TensorError(f"{where}: 'data' must be an array, got {_describe(data)}")
    expected = math.prod(shape)
    if len(shape) > 1 and data and isinstance(data[0], list):
        flat: list[Any] = []
        last = len(shape) - 1

        def fail(node: Any, depth: int, path: tuple[int, ...]) -> None:
            where_in = "data" + "".join(f"[{i}]" for i in path)
            if not isinstance(node, list):
                raise TensorError(
                    f"{where}: {where_in} must be an array of {shape[depth]} elements for shape "
                    f"{list(shape)}, got {_describe(node)}"
                )
            raise TensorError(
                f"{where}: {where_in} has {len(node)} elements but shape {list(shape)} needs "
                f"{shape[depth]} there"
            )

        def walk(node: list[Any], depth: int, path: tuple[int, ...]) -> None:
            size = shape[depth + 1]
            for i, child in enumerate(node):
                if type(child) is not list or len(child) != size:
                    fail(child, depth + 1, (*path, i))
                if depth + 1 == last:
                    flat.extend(child)
                else:
                    walk(child, depth + 1, (*path, i))

        if len(data) != shape[0]:
            fail(data, 0, ())
        walk(data, 0, ())
        return flat, True
    if len(data) != expected:
        raise TensorError(
            f"{where}: 'data' has {len(data)} elements but shape {list(shape)} needs {expected}"
        )
    return data, False


def _check_values(
    where: str, datatype: str, flat: list[Any], shape: tuple[int, ...], nested: bool
) -> set[type]:
    """Check each element's JSON type and range; return the set of types seen."""
    accepted = _ACCEPTED[datatype]
    types = set(map(type, flat))  # one pass in C; the loop below only finds the culprit
    if not types <= accepted:
        for i, value in enumerate(flat):
            if type(value) not in accepted:
                raise TensorError(
                    f"{where}: {_index(i, shape, nested)} must be {_EXPECTED[datatype]} for "
                    f"{datatype}, got {_describe(value)}"
                )
    if datatype in INTEGER_TYPES and flat:
        info = np.iinfo(DTYPES[datatype])
        low, high = min(flat), max(flat)
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            i = flat.index(bad)
            raise TensorError(
                f"{where}: {_index(i, shape, nested)} = {bad} is out of range for {datatype} "
                f"[{info.min}, {info.max}]"
            )
    return types


@dataclass(frozen=True)
class TensorHeader:
    """What a ``$request_input`` says of its tensor besides the data: name, datatype, shape, and
    the size of its bytes in the body when it is sent binary (``binary_data_size``)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    binary_size: int | None = None

    @property
    def where(self) -> str:
        """How error messages name the input."""
        return f"input '{self.name}'"


def tensor_header(spec: Any, position: int = 0) -> TensorHeader:
    """Read and check one ``$request_input`` object's header, or raise `TensorError`."""
    if not isinstance(spec, Mapping):
        raise TensorError(f"inputs[{position}]: expected an object, got {_describe(spec)}")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise TensorError(f"inputs[{position}]: 'name' must be a non-empty string")
    where = f"input '{name}'"
    params = spec.get("parameters")
    if params is not None and not isinstance(params, Mapping):
        raise TensorError(f"{where}: 'parameters' must be an object")
    if params and "shared_memory_region" in params:
        raise TensorError(f"{where}: shared memory tensors are not supported; send 'data' as JSON")
    size = params.get("binary_data_size") if params else None
    if size is not None and (type(size) is not int or size < 0):
        raise TensorError(f"{where}: 'binary_data_size' must be an integer >= 0, got {_describe(size)}")
    datatype = spec.get("datatype")
    if datatype in BINARY_ONLY and size is None:
        raise TensorError(f"{where}: datatype {datatype} has no JSON form; send it as binary data")
    if datatype not in DTYPES and datatype not in BINARY_ONLY:
        known = ", ".join([*DTYPES, *BINARY_ONLY])
        raise TensorError(f"{where}: unknown datatype {_describe(datatype)}; expected one of {known}")
    shape = _check_shape(where, spec.get("shape"))
    return TensorHeader(name, str(datatype), shape, size)


def decode_tensor(spec: Any, position: int = 0) -> Tensor:
    """Decode one ``$request_input`` object with JSON ``data`` into a `Tensor`, or raise
    `TensorError`."""
    header = tensor_header(spec, position)
    name, datatype, shape, where = header.name, header.datatype, header.shape, header.where
    if header.binary_size is not None:
        raise TensorError(
            f"{where}: 'binary_data_size' is given but the request has no binary data "
            "(no Inference-Header-Content-Length header)"
        )
    if "data" not in spec:
        raise TensorError(f"{where}: 'data' is missing")
    flat, nested = _flatten(where, spec["data"], shape)
    types = _check_values(where, datatype, flat, shape, nested)
    tensor = Tensor(name=name, datatype=datatype, shape=shape, values=flat)
    if datatype == "FP64" and types <= {float}:
        # JSON floats already are float64: the rows are the data itself, no numpy needed.
        if len(shape) == 1:
            tensor._rows = flat
        elif len(shape) == 2 and nested:
            tensor._rows = spec["data"]
        elif len(shape) == 2:
            width = shape[1]
            if width <= 0:  # rows without values: nothing to score
                raise TensorError(
                    f"input {name!r}: shape {shape} has rows of width 0; every row needs values"
                )
            tensor._rows = [flat[i : i + width] for i in range(0, len(flat), width)]
        return tensor
    if datatype in INTEGER_TYPES or datatype in ("BOOL", "BYTES"):
        return tensor  # every value was checked to fit: the array cannot fail to build
    try:
        # Float overflow becomes inf (checked below) instead of a RuntimeWarning per request.
        with np.errstate(over="ignore"):
            array = tensor.array
    except (OverflowError, ValueError) as exc:  # e.g. an int too large for a float
        raise TensorError(f"{where}: values do not fit {datatype}: {exc}") from exc
    overflow = np.flatnonzero(np.isinf(array.reshape(-1)))
    if overflow.size:
        i = int(overflow[0])
        raise TensorError(f"{where}: {_index(i, shape, nested)} = {flat[i]!r} is out of range for {datatype}")
    return tensor


def check_compatible(tensor: Tensor, spec: Mapping[str, Any]) -> None:
    """Check a decoded input against the model's input spec (``{"name", "datatype", "shape"}``).

    Dimensions of -1 in the spec are free; the others must match. Any numeric tensor may feed a
    floating-point input, but an integer input needs an integer tensor, and BOOL/BYTES need
    their own datatype.
    """
    where = f"input '{tensor.name}'"
    want_type = spec.get("datatype")
    if want_type in FLOAT_TYPES:
        ok = tensor.datatype in NUMERIC_TYPES
    elif want_type in INTEGER_TYPES:
        ok = tensor.datatype in INTEGER_TYPES
    else:
        ok = want_type is None or tensor.datatype == want_type
    if not ok:
        raise TensorError(f"{where}: datatype {tensor.datatype} cannot feed the model's {want_type} input")
    want_shape = spec.get("shape")
    if isinstance(want_shape, list):
        fits = len(want_shape) == len(tensor.shape) and all(
            w == -1 or w == got for w, got in zip(want_shape, tensor.shape, strict=True)
        )
        if not fits:
            raise TensorError(
                f"{where}: shape {list(tensor.shape)} does not match the model's input shape {want_shape}"
            )


# The datatype of predictions as numpy makes them, by dtype kind; numbers go out as FP64 unless
# the model declares its output (`encode_output`).
_NATURAL = {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64", "U": "BYTES"}
DEFAULT_OUTPUT = {"datatype": "FP64", "shape": [-1]}


@dataclass(frozen=True)
class OutputTensor:
    """A ``$response_output``: its elements as a numpy array of its datatype (str objects for
    BYTES), sent as JSON ``data`` (`to_json`) or as binary data (binary.py)."""

    name: str
    datatype: str
    array: np.ndarray

    @property
    def shape(self) -> list[int]:
        """The tensor's shape as the response states it."""
        return list(self.array.shape)

    def to_json(self) -> dict[str, Any]:
        """The output with its elements as JSON ``data`` (row-major, flat)."""
        data = self.array.reshape(-1).tolist()
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape, "data": data}


def _as_array(predictions: list[Any]) -> np.ndarray:
    try:
        if predictions and set(map(type, predictions)) == {int}:
            # numpy would turn [0, 2**64 - 1] into floats: pick the integer type here.
            big = min(predictions) >= 0 and max(predictions) > np.iinfo(np.int64).max
            return np.asarray(predictions, dtype=np.uint64 if big else np.int64)
        return np.asarray(predictions)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"the predictions do not form a tensor: {exc}") from exc


def encode_output(
    name: str, predictions: list[Any], declared: Mapping[str, Any] | None = None
) -> OutputTensor:
    """One prediction per row as an output tensor of shape [N], or [N, K] when each prediction
    has K values, in the datatype the model metadata states, so that the two always agree:

    - `declared` (the model's own output spec, from its signature): that datatype and shape;
      predictions that do not fit it (strings for FP64, 1.5 for INT64, [N, 2] for [-1]) are a
      ValueError;
    - nothing declared: the metadata says FP64, and numbers and booleans go out as FP64;
      strings, which no FP64 can carry, go out as BYTES.

    Raises ValueError when the predictions do not form a tensor (ragged, None, objects).
    """
    array = _as_array(predictions)
    natural = _NATURAL.get(array.dtype.kind)
    if natural is None:
        kinds = sorted({type(p).__name__ for p in predictions})
        raise ValueError(f"predictions of type {', '.join(kinds)} cannot be sent as a V2 tensor")
    if array.ndim == 0:
        array = array.reshape(1)
    if declared is None:
        datatype = "BYTES" if natural == "BYTES" else "FP64"
        return OutputTensor(name, datatype, _cast(array, natural, datatype))
    datatype = str(declared.get("datatype"))
    if datatype not in DTYPES and datatype not in BINARY_ONLY:
        raise ValueError(f"the model's output datatype {datatype!r} is not a V2 datatype")
    shape = declared.get("shape")
    if isinstance(shape, list) and not _fits(shape, array.shape):
        raise ValueError(
            f"the predictions have shape {list(array.shape)}, the model's output is declared {shape}"
        )
    return OutputTensor(name, datatype, _cast(array, natural, datatype))


def _fits(declared: list[Any], shape: tuple[int, ...]) -> bool:
    return len(declared) == len(shape) and all(
        w in (-1, None) or w == got for w, got in zip(declared, shape, strict=True)
    )


def _cast(array: np.ndarray, natural: str, datatype: str) -> np.ndarray:
    """The predictions as `datatype`, or ValueError when they are not values of it."""
    if datatype == natural:
        return array.astype(object) if datatype == "BYTES" else array
    if "BYTES" in (datatype, natural) or datatype == "BOOL":
        raise ValueError(f"predictions of type {natural} cannot be sent as the model's {datatype} output")
    if datatype in INTEGER_TYPES:
        if natural == "FP64" and not np.all(np.mod(array, 1) == 0):
            raise ValueError(
                f"predictions that are not whole numbers cannot be sent as the model's {datatype} output"
            )
        info = np.iinfo(DTYPES[datatype])
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise ValueError(f"predictions out of range for the model's {datatype} output")
        return array.astype(DTYPES[datatype])
    # A float output: FP16/FP32/FP64, or BF16 (kept as float32, sent as its upper 16 bits).
    return array.astype(np.float32 if datatype == "BF16" else DTYPES[datatype])
