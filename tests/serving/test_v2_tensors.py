"""V2 tensor decoding and encoding: every datatype, flat and nested data, ranges, shapes, errors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from v2_support import tensor

from shipyard.serving.v2.tensors import TensorError, check_compatible, decode_tensor, encode_output

# ---------------------------------------------------------------- tensor decoding


@pytest.mark.parametrize(
    ("datatype", "data", "dtype"),
    [
        ("BOOL", [True, False], np.bool_),
        ("UINT8", [0, 255], np.uint8),
        ("UINT16", [0, 65535], np.uint16),
        ("UINT32", [0, 2**32 - 1], np.uint32),
        ("UINT64", [0, 2**64 - 1], np.uint64),
        ("INT8", [-128, 127], np.int8),
        ("INT16", [-(2**15), 2**15 - 1], np.int16),
        ("INT32", [-(2**31), 2**31 - 1], np.int32),
        ("INT64", [-(2**63), 2**63 - 1], np.int64),
        ("FP16", [0.5, -65504], np.float16),
        ("FP32", [0.25, 3], np.float32),
        ("FP64", [0.1, 10**20], np.float64),
        ("BYTES", ["a", "b c"], np.object_),
    ],
)
def test_decode_each_datatype(datatype: str, data: list[Any], dtype: Any) -> None:
    decoded = decode_tensor(tensor(data, [2], datatype, "x"))
    assert decoded.name == "x" and decoded.datatype == datatype and decoded.shape == (2,)
    assert decoded.array.dtype == np.dtype(dtype)
    assert decoded.rows() == [dtype(v).item() if datatype != "BYTES" else v for v in data]


@pytest.mark.parametrize("datatype", ["BOOL", "INT16", "FP32", "BYTES"])
def test_decode_flat_and_nested_agree(datatype: str) -> None:
    values = {"BOOL": [True, False], "INT16": [3, -4], "FP32": [0.5, 1.5], "BYTES": ["p", "q"]}[datatype]
    flat = [values[(i + j) % 2] for i in range(2) for j in range(3)]
    nested = [flat[0:3], flat[3:6]]
    a = decode_tensor(tensor(flat, [2, 3], datatype))
    b = decode_tensor(tensor(nested, [2, 3], datatype))
    assert a.array.shape == b.array.shape == (2, 3)
    assert a.rows() == b.rows() == nested


def test_decode_three_dimensions() -> None:
    nested = [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]
    assert decode_tensor(tensor(nested, [2, 2, 2], "INT32")).rows() == nested
    assert decode_tensor(tensor(list(range(1, 9)), [2, 2, 2], "INT32")).rows() == nested


@pytest.mark.parametrize(
    ("datatype", "value"),
    [
        ("UINT8", 256),
        ("UINT8", -1),
        ("UINT16", 65536),
        ("UINT32", 2**32),
        ("UINT64", -1),
        ("INT8", 128),
        ("INT8", -129),
        ("INT16", 2**15),
        ("INT32", -(2**31) - 1),
        ("INT64", 2**63),
    ],
)
def test_decode_integer_out_of_range(datatype: str, value: int) -> None:
    with pytest.raises(TensorError, match=rf"input 'x': data\[1\] = {value} is out of range for {datatype}"):
        decode_tensor(tensor([0, value], [2], datatype, "x"))


@pytest.mark.parametrize(("datatype", "value"), [("FP16", 70000.0), ("FP32", 1e39), ("FP32", -1e39)])
def test_decode_float_out_of_range(datatype: str, value: float) -> None:
    with pytest.raises(TensorError, match=rf"data\[0\]\[1\] = .* is out of range for {datatype}"):
        decode_tensor(tensor([[1.0, value]], [1, 2], datatype, "x"))


@pytest.mark.parametrize(
    ("datatype", "value", "words"),
    [
        ("FP64", "1.5", "must be a number for FP64, got '1.5'"),
        ("FP64", True, "must be a number for FP64, got true"),
        ("FP32", None, "got null"),
        ("FP64", [1.0], "got an array"),
        ("INT32", 1.5, "must be an integer for INT32, got 1.5"),
        ("INT64", False, "must be an integer for INT64, got false"),
        ("UINT8", "7", "must be an integer"),
        ("BOOL", 1, "must be true or false for BOOL, got 1"),
        ("BOOL", "true", "must be true or false"),
        ("BYTES", 3, "must be a string for BYTES, got 3"),
        ("BYTES", {"a": 1}, "got an object"),
    ],
)
def test_decode_wrong_value_type(datatype: str, value: Any, words: str) -> None:
    good = {"BOOL": True, "BYTES": "s"}.get(datatype, 1)
    with pytest.raises(TensorError) as info:
        decode_tensor(tensor([good, value], [2], datatype, "x"))
    assert str(info.value).startswith("input 'x': data[1] ")
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("shape", "words"),
    [
        ([], "'shape' must be a non-empty array"),
        ("2", "'shape' must be a non-empty array"),
        ([-1, 2], "integers >= 0"),
        ([2, 1.0], "integers >= 0"),
        ([True], "integers >= 0"),
    ],
)
def test_decode_bad_shape(shape: Any, words: str) -> None:
    with pytest.raises(TensorError, match="input 'x'") as info:
        decode_tensor({"name": "x", "shape": shape, "datatype": "FP64", "data": [1.0, 2.0]})
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("data", "shape", "words"),
    [
        ([1, 2, 3], [2, 2], "'data' has 3 elements but shape [2, 2] needs 4"),
        ([1, 2, 3, 4, 5], [4], "'data' has 5 elements but shape [4] needs 4"),
        ([[1, 2], [3]], [2, 2], "data[1] has 1 elements"),
        ([[1, 2], 3], [2, 2], "data[1] must be an array of 2 elements"),
        ([[1, 2, 3, 4]], [2, 2], "data has 1 elements but shape [2, 2] needs 2"),
        ([[[1], [2]], [[3], [4]]], [2, 2], "data[0][0] must be a number for FP64, got an array"),
        ({"a": 1}, [1], "'data' must be an array"),
    ],
)
def test_decode_wrong_element_count_or_nesting(data: Any, shape: list[int], words: str) -> None:
    with pytest.raises(TensorError, match="input 'x'") as info:
        decode_tensor(tensor(data, shape, "FP64", "x"))
    assert words in str(info.value)


@pytest.mark.parametrize(("datatype", "words"), [("FLOAT64", "unknown datatype"), ("BF16", "no JSON form")])
def test_decode_unsupported_datatype(datatype: str, words: str) -> None:
    with pytest.raises(TensorError, match=words):
        decode_tensor(tensor([1.0], [1], datatype, "x"))


def test_decode_rejects_shared_memory() -> None:
    spec = {**tensor([1.0], [1]), "parameters": {"shared_memory_region": "r0"}}
    with pytest.raises(TensorError, match="shared memory"):
        decode_tensor(spec)


def test_zero_size_tensor() -> None:
    assert decode_tensor(tensor([], [0, 10])).array.shape == (0, 10)


def test_check_compatible() -> None:
    spec = {"name": "data", "datatype": "INT64", "shape": [-1, 2]}
    check_compatible(decode_tensor(tensor([[1, 2]], datatype="UINT8")), spec)
    with pytest.raises(TensorError, match="FP32 cannot feed the model's INT64"):
        check_compatible(decode_tensor(tensor([[1, 2]], datatype="FP32")), spec)
    with pytest.raises(TensorError, match=r"shape \[1, 3\] does not match"):
        check_compatible(decode_tensor(tensor([[1, 2, 3]], datatype="INT64")), spec)


def test_encode_output() -> None:
    want = {"name": "p", "datatype": "FP64", "shape": [2], "data": [1.0, 2.5]}
    assert encode_output("p", [1, 2.5]).to_json() == want
    assert encode_output("p", [np.int32(3)]).datatype == "FP64"  # nothing declared: FP64
    assert encode_output("p", [np.int32(3)], {"datatype": "INT64", "shape": [-1]}).to_json()["data"] == [3]
    assert encode_output("p", [[1, 2]], {"datatype": "INT32", "shape": [-1, 2]}).array.dtype == np.int32
    with pytest.raises(ValueError, match="do not form a tensor"):
        encode_output("p", [[1, 2], [3]])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=3).flatmap(
        lambda shape: st.tuples(
            st.just(shape),
            st.lists(
                st.floats(allow_nan=False, allow_infinity=False, width=64),
                min_size=math.prod(shape),
                max_size=math.prod(shape),
            ),
        )
    )
)
def test_flat_and_nested_data_decode_alike(case: tuple[list[int], list[float]]) -> None:
    shape, flat = case
    nested = np.asarray(flat, dtype=np.float64).reshape(shape).tolist()
    a = decode_tensor(tensor(flat, shape))
    b = decode_tensor(tensor(nested, shape))
    assert a.rows() == b.rows() == nested
    assert a.array.dtype == b.array.dtype == np.float64
    assert np.array_equal(a.array, b.array) and a.array.shape == tuple(shape)
