"""The bundle's signature from its input sample: the sample's whole shape (any number of rows),
nothing for a sample that is not a regular array of numbers; the server checks every row against
the whole shape (an 8x8 image sample passes, a 7x8 one is refused naming the row) and enforces no
shape without a signature."""

from __future__ import annotations

import pytest

from shipyard.packaging.bundle import _signature
from shipyard.serving.validation import ScoringInputError, parse_signature, validate_payload

TABLE = {"data": [[1, 2, 3], [4, 5.5, 6]]}
IMAGES = {"data": [[[0.0] * 8 for _ in range(8)]]}  # one 8x8 image


def _shape(sample):
    return _signature(sample)["inputs"]["data"]["shape"]


def test_the_whole_shape_of_the_sample():
    assert _shape(TABLE) == [-1, 3]
    assert _shape(IMAGES) == [-1, 8, 8]
    assert _shape({"data": [[[[1, 2]] * 3] * 4] * 2}) == [-1, 4, 3, 2]


@pytest.mark.parametrize(
    "sample",
    [None, {}, {"data": [1, 2, 3]}, {"data": [[1, 2], [3]]}, {"data": [["a", "b"]]},
     {"data": [[True, False]]}, {"data": []}, {"data": "aGVsbG8="}, {"image": [[1, 2]]}],
)  # fmt: skip
def test_no_signature_when_the_sample_is_not_a_regular_array(sample):
    assert _signature(sample) == {}


def test_an_image_sample_passes_the_checks_made_from_its_own_signature():
    [images] = parse_signature(_signature(IMAGES))
    assert images.row_shape == (8, 8) and images.tensor_spec()["shape"] == [-1, 8, 8]
    validate_payload(IMAGES, [images])
    [table] = parse_signature(_signature(TABLE))
    assert table.width == 3
    validate_payload(TABLE, [table])


ROW = "(each row of 'data' has shape [8, 8])"


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"data": [[[0.0] * 8] * 7]}, "data[0]", f"data[0]: expected 8 arrays, got 7 {ROW}"),
        ({"data": [[[0.0] * 8] * 8, [[0.0] * 8] * 7 + [[0.0] * 9]]}, "data[1][7]",
         f"data[1][7]: expected 8 numbers, got 9 {ROW}"),
        ({"data": [[[0.0] * 8] * 7 + [[0.0] * 7 + ["x"]]]}, "data[0][7][7]",
         'data[0][7][7]: expected a number, got "x"'),
        ({"data": [[0.0] * 8]}, "data[0][0]", f"data[0][0]: expected a list of 8 numbers {ROW}, got number"),
    ],
)  # fmt: skip
def test_a_wrong_inner_shape_is_refused_naming_the_element(payload, field, message):
    [images] = parse_signature(_signature(IMAGES))
    with pytest.raises(ScoringInputError) as info:
        validate_payload(payload, [images])
    assert (info.value.field, str(info.value)) == (field, message)
    assert info.value.status_code == 422


def test_no_shape_is_enforced_without_a_signature():
    assert parse_signature(_signature({"data": [[1, 2], [3]]})) == []
    validate_payload({"anything": "goes"}, [])
