"""Compressed request bodies (Content-Encoding: gzip, deflate) on every scoring route of a real server
process: decoded before parsing, held to max_body_mb once decoded (a gzip bomb is a 413 that costs
the server no more than the limit in memory), unknown codings 415, broken data 400, each in its
protocol's error shape."""

from __future__ import annotations

import functools
import gzip
import json
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from bundles import make_pyfunc_bundle, serving

pytestmark = pytest.mark.integration

MAX_BODY_MB = 2
ROWS = np.random.default_rng(3).integers(0, 100, size=(5, 10))
JSON_ROWS = json.dumps({"inputs": ROWS.tolist()}).encode()
V2_BODY = json.dumps(
    {"inputs": [{"name": "inputs", "datatype": "INT64", "shape": [5, 10], "data": ROWS.ravel().tolist()}]}
).encode()
# (path, plain body, the predictions in its answer)
ROUTES = {
    "/score": (JSON_ROWS, lambda body: body["result"]),
    "/invocations": (JSON_ROWS, lambda body: body["predictions"]),
    "/v2/models/ints/infer": (V2_BODY, lambda body: body["outputs"][0]["data"]),
}
MESSAGE = {
    "/score": lambda body: body["error"]["message"],
    "/invocations": lambda body: body["message"],
    "/v2/models/ints/infer": lambda body: body["error"],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("encodings")
    x = np.random.default_rng(2).integers(0, 100, size=(40, 10))
    bundle = make_pyfunc_bundle(root / "bundle", x, x @ np.arange(10.0))
    settings = {"auth": False, "max_body_mb": MAX_BODY_MB}
    with serving(bundle, root, settings, "encodings") as proc:
        yield proc


def post(server, path: str, body: bytes, **headers: str) -> httpx.Response:
    headers = {"content-type": "application/json", **headers}
    return httpx.post(server.url + path, content=body, headers=headers, timeout=60, trust_env=False)


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


CODINGS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,  # the zlib format, as RFC 9110 and tritonclient have it
    "deflate-raw": raw_deflate,  # sent as "deflate" by some clients
    "gzip-two-members": lambda data: gzip.compress(data[:100]) + gzip.compress(data[100:]),
}


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("coding", CODINGS)
def test_a_compressed_body_scores_as_the_plain_one(server, path, coding):
    body, predictions = ROUTES[path]
    plain = post(server, path, body)
    assert plain.status_code == 200, plain.text
    header = coding.split("-")[0] if coding != "x-gzip" else coding
    packed = post(server, path, CODINGS[coding](body), **{"content-encoding": header})
    assert packed.status_code == 200, packed.text
    assert predictions(packed.json()) == predictions(plain.json())
    assert len(predictions(plain.json())) == 5


@pytest.mark.parametrize("path", ROUTES)
def test_identity_is_no_coding(server, path):
    body, predictions = ROUTES[path]
    response = post(server, path, body, **{"content-encoding": "identity"})
    assert response.status_code == 200 and len(predictions(response.json())) == 5


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("coding", ["br", "gzip, gzip", "compress", "zstd"])
def test_an_unknown_coding_is_415_saying_what_is_supported(server, path, coding):
    body, _ = ROUTES[path]
    response = post(server, path, body, **{"content-encoding": coding})
    assert response.status_code == 415, response.text
    message = MESSAGE[path](response.json())
    assert f"Content-Encoding '{coding}' is not supported" in message and "gzip or deflate" in message


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    ("coding", "data", "words"),
    [
        ("gzip", b"not gzip at all", "not valid gzip data"),
        ("gzip", gzip.compress(JSON_ROWS)[:-12], "ends before its gzip data"),
        ("deflate", zlib.compress(JSON_ROWS) + b"tail", "after the end of its deflate data"),
        ("deflate", b"\x78\x9c\xff\xff", "not valid deflate data"),
        ("gzip", b"", "ends before its gzip data"),
    ],
)
def test_broken_compressed_data_is_400(server, path, coding, data, words):
    response = post(server, path, data, **{"content-encoding": coding})
    assert response.status_code == 400, response.text
    assert words in MESSAGE[path](response.json())


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM line")


@functools.cache
def gzip_bomb(size: int) -> bytes:
    """`size` bytes of JSON-looking text (a long run of spaces), gzipped: about size/1000 bytes."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * (1 << 20)
    parts = [packer.compress(b'{"inputs": [')]
    parts += [packer.compress(block) for _ in range(size >> 20)]
    return b"".join(parts) + packer.compress(b"]}") + packer.flush()


@pytest.mark.parametrize("path", ROUTES)
def test_a_gzip_bomb_is_413_without_inflating(server, path):
    bomb = gzip_bomb(1 << 30)  # 1 GiB once inflated, about 1 MB sent: under the 2 MB limit
    assert len(bomb) < MAX_BODY_MB * 1024 * 1024
    before = _peak_rss_kib(server.pid)
    response = post(server, path, bomb, **{"content-encoding": "gzip"})
    assert response.status_code == 413, response.text
    assert "decompressed" in MESSAGE[path](response.json()) and "max_body_mb" in response.text
    # The server inflated at most the limit (2 MB) and a chunk: nowhere near the gigabyte.
    assert _peak_rss_kib(server.pid) - before < 64 * 1024
    # Just under the limit once inflated is read and parsed (and refused by the model for its
    # shape, not by the limit).
    near = gzip.compress(b'{"inputs": [' + b" " * (MAX_BODY_MB * 1024 * 1024 - 100) + b"]}")
    assert post(server, path, near, **{"content-encoding": "gzip"}).status_code not in (413, 500)
    body, _ = ROUTES[path]
    assert post(server, path, body).status_code == 200  # and the server answers as before
