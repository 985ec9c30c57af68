"""The bundle's signature from its input sample: the sample's whole shape (any number of rows),
nothing for a sample that is not a regular array of numbers; the server checks [-1, N] inputs
and enforces no shape it cannot check (an image sample no longer fails its own smoke test)."""

from __future__ import annotations

import pytest

from shipyard.packaging.bundle import _signature
from shipyard.serving.validation import parse_signature, validate_payload

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
    checks = parse_signature(_signature(IMAGES))
    assert checks == []  # an N-d input is not checked value by value: nothing refuses it
    validate_payload(IMAGES, checks)
    [table] = parse_signature(_signature(TABLE))
    assert table.width == 3
    validate_payload(TABLE, [table])
