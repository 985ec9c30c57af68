"""The binary tensor data extension of the Open Inference Protocol (Triton's, which KServe adopted).

A request or response that carries tensors as raw bytes is the JSON object, then the tensors'
bytes in the order the JSON lists them; the ``Inference-Header-Content-Length`` header gives the
length of the JSON part, and each binary tensor says how many bytes are its own with
``parameters.binary_data_size`` (instead of ``data``). The bytes are the elements in row-major
order, little-endian, in the datatype's native size, without padding: BOOL one byte (0 or 1),
BF16 the upper half of a float32, BYTES each element as a 4-byte little-endian length followed by
its bytes.

A client asks for outputs in binary with ``parameters.binary_data: true`` on a requested output,
or ``parameters.binary_data_output: true`` on the request (for every output; an output's own flag
wins). tritonclient does both by default: it sends inputs binary and, unless told otherwise,
asks for binary outputs.

BYTES elements reach the model as text (str), as they do from JSON: an element that is not UTF-8
is refused (400). Non-finite floats are refused as the JSON form refuses them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from shipyard.serving.v2.tensors import (
    DTYPES,
    FLOAT_TYPES,
    OutputTensor,
    Tensor,
    TensorError,
    TensorHeader,
)

HEADER = "inference-header-content-length"
CONTENT_TYPE = "application/octet-stream"
_LENGTH = 4  # the length prefix of a BYTES element


class BinaryRequestError(TensorError):
    """A request whose binary part does not match what its JSON says (HTTP 400)."""


def split_body(body: bytes, header_length: str) -> tuple[bytes, memoryview]:
    """The JSON part and the binary part of a request, by its Inference-Header-Content-Length."""
    text = header_length.strip()
    if not text.isdigit():
        raise BinaryRequestError(
            f"Inference-Header-Content-Length must be a number of bytes, got {text[:40]!r}"
        )
    length = int(text)
    if length == 0 or length > len(body):
        raise BinaryRequestError(
            f"Inference-Header-Content-Length is {length} but the body has {len(body)} bytes; it must "
            "give the length of the JSON part, which comes first"
        )
    view = memoryview(body)
    return body[:length], view[length:]


def input_bytes(headers: list[TensorHeader], binary: memoryview) -> list[memoryview | None]:
    """Each input's bytes (None for one sent as JSON), taken in order from the binary part, which
    they must use up exactly."""
    parts: list[memoryview | None] = []
    offset = 0
    for header in headers:
        if header.binary_size is None:
            parts.append(None)
            continue
        end = offset + header.binary_size
        if end > len(binary):
            raise BinaryRequestError(
                f"{header.where}: binary_data_size {header.binary_size} runs past the end of the body "
                f"({len(binary) - offset} bytes of binary data left)"
            )
        parts.append(binary[offset:end])
        offset = end
    if offset != len(binary):
        raise BinaryRequestError(
            f"the body has {len(binary) - offset} bytes of binary data that no input's "
            "binary_data_size claims"
        )
    return parts


def decode_binary(header: TensorHeader, data: memoryview) -> Tensor:
    """A tensor from its bytes, checked against its shape and datatype."""
    where, datatype, shape = header.where, header.datatype, header.shape
    count = math.prod(shape)
    if datatype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = _split_bytes(where, data, count)
        return Tensor(header.name, datatype, shape, None, _array=array.reshape(shape))
    itemsize = 2 if datatype == "BF16" else np.dtype(DTYPES[datatype]).itemsize
    if len(data) != count * itemsize:
        raise BinaryRequestError(
            f"{where}: binary_data_size is {len(data)} bytes but shape {list(shape)} of {datatype} needs "
            f"{count * itemsize}"
        )
    if datatype == "BF16":
        # bfloat16 is the upper half of a float32: widen it, as numpy has no bfloat16.
        array = (np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    elif datatype == "BOOL":
        raw = np.frombuffer(data, dtype=np.uint8)
        if raw.size and raw.max() > 1:
            i = int(np.flatnonzero(raw > 1)[0])
            raise BinaryRequestError(f"{where}: element {i} is {int(raw[i])}; BOOL elements are bytes 0 or 1")
        array = raw.astype(np.bool_)
    else:
        array = np.frombuffer(data, dtype=np.dtype(DTYPES[datatype]).newbyteorder("<"))
        if datatype in FLOAT_TYPES and array.size:
            bad = np.flatnonzero(~np.isfinite(array))
            if bad.size:
                i = int(bad[0])
                raise BinaryRequestError(f"{where}: element {i} is {array[i]}; send finite numbers")
    return Tensor(header.name, datatype, shape, None, _array=array.reshape(shape))


def _split_bytes(where: str, data: memoryview, count: int) -> list[str]:
    """The elements of a BYTES tensor: each a 4-byte little-endian length, then that many bytes."""
    elements: list[str] = []
    raw = data.tobytes()
    offset = 0
    while offset < len(raw):
        if len(elements) == count:
            raise BinaryRequestError(
                f"{where}: the binary data holds more than the {count} elements its shape has"
            )
        if offset + _LENGTH > len(raw):
            raise BinaryRequestError(f"{where}: element {len(elements)} has a cut-off length prefix")
        size = int.from_bytes(raw[offset : offset + _LENGTH], "little")
        start, offset = offset + _LENGTH, offset + _LENGTH + size
        if offset > len(raw):
            raise BinaryRequestError(
                f"{where}: element {len(elements)} claims {size} bytes, {len(raw) - start} are left"
            )
        try:
            elements.append(raw[start:offset].decode("utf-8"))
        except UnicodeDecodeError:
            raise BinaryRequestError(
                f"{where}: element {len(elements)} is not UTF-8 text; this server passes BYTES "
                "to the model as text"
            ) from None
    if len(elements) != count:
        raise BinaryRequestError(
            f"{where}: the binary data holds {len(elements)} elements, its shape needs {count}"
        )
    return elements


def wants_binary(payload: Mapping[str, Any], output_name: str) -> bool:
    """Whether the request asks for output `output_name` in binary (its own ``binary_data``, else
    the request's ``binary_data_output``); TensorError for a flag that is not true or false."""
    flag = _flag((payload.get("parameters") or {}).get("binary_data_output"), "parameters.binary_data_output")
    for output in payload.get("outputs") or ():
        if output.get("name") == output_name:
            params = output.get("parameters")
            if params is not None and not isinstance(params, Mapping):
                raise TensorError(f"output '{output_name}': 'parameters' must be an object")
            own = _flag((params or {}).get("binary_data"), f"output '{output_name}': binary_data")
            if own is not None:
                return own
    return bool(flag)


def _flag(value: Any, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise TensorError(f"{where} must be true or false, got {value!r}")


def output_bytes(output: OutputTensor) -> bytes:
    """An output tensor's elements in the extension's binary form."""
    array = output.array
    if output.datatype == "BYTES":
        parts = []
        for element in array.reshape(-1).tolist():
            raw = element.encode("utf-8") if isinstance(element, str) else bytes(element)
            parts += [len(raw).to_bytes(_LENGTH, "little"), raw]
        return b"".join(parts)
    if output.datatype == "BF16":
        return (np.ascontiguousarray(array, dtype="<f4").view("<u4") >> 16).astype("<u2").tobytes()
    if output.datatype == "BOOL":
        return array.astype(np.uint8).tobytes()
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def binary_output(output: OutputTensor) -> tuple[dict[str, Any], bytes]:
    """The output's JSON part (no ``data``, its ``binary_data_size``) and its bytes."""
    data = output_bytes(output)
    header = {
        "name": output.name,
        "datatype": output.datatype,
        "shape": output.shape,
        "parameters": {"binary_data_size": len(data)},
    }
    return header, data
