"""Images and files to an entry script's run() through real server processes: base64 values in JSON
({"b64": ...}), image/png and image/jpeg bodies and multipart uploads reach run() as uint8 arrays
when the signature's rows are images, as the bytes sent otherwise; N-d JSON rows are checked
against the whole shape; bad images are clear 4xx answers (docs/serving.md, "Images and files")."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from bundles import make_bundle, make_pyfunc_bundle, serving
from PIL import Image

from shipyard.packaging.bundle import _signature

pytestmark = pytest.mark.integration

# Sums each row's pixels and says what run() was given.
DIGITS_PY = """\
import json
import numpy as np
def init():
    pass
def run(data):
    kind = "text" if isinstance(data, str) else type(data["data"][0]).__name__
    if isinstance(data, str):
        data = json.loads(data)
    rows = [np.asarray(row, dtype=float) for row in data["data"]]
    return {
        "result": [float(row.sum()) for row in rows],
        "kind": kind,
        "shapes": [list(row.shape) for row in rows],
        "dtype": str(getattr(data["data"][0], "dtype", "")),
        "fields": {k: v for k, v in data.items() if k != "data"},
    }
"""
# Returns the first row's pixels as they arrived.
PIXELS_PY = """\
def init():
    pass
def run(data):
    return {"pixels": data["data"][0].tolist()}
"""
# No signature: says what each field holds (bytes by length and hash).
FILES_PY = """\
import hashlib
def init():
    pass
def describe(value):
    if isinstance(value, bytes):
        return {"bytes": len(value), "sha256": hashlib.sha256(value).hexdigest()}
    if isinstance(value, list):
        return [describe(v) for v in value]
    if isinstance(value, dict):
        return {k: describe(v) for k, v in value.items()}
    return value
def run(data):
    if isinstance(data, str):
        return {"text": data}
    return describe(data)
"""
IMAGE_SAMPLE = {"data": [[[0.0] * 8 for _ in range(8)]]}  # one 8x8 image: signature [-1, 8, 8]


def _bundle(root: Path, score_py: str, signature: dict[str, Any]) -> Path:
    bundle, _ = make_bundle(root, score_py)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["signature"] = signature
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    digits = _bundle(root / "digits", DIGITS_PY, _signature(IMAGE_SAMPLE))
    rgb = _bundle(root / "rgb", PIXELS_PY, _signature({"data": [np.zeros((2, 3, 3)).tolist()]}))
    files = _bundle(root / "files", FILES_PY, _signature({"data": "not an array"}))
    x = np.random.default_rng(2).normal(size=(20, 10))
    rows = make_pyfunc_bundle(root / "rows", x, x @ np.arange(10.0))
    settings = {"auth": False, "max_image_pixels": 3000 * 3000}
    with (
        serving(digits, root, settings, "digits") as d,
        serving(rgb, root, settings, "rgb") as r,
        serving(files, root, settings, "files") as f,
        serving(rows, root, settings, "rows") as m,
    ):
        yield {"digits": d, "rgb": r, "files": f, "rows": m}


def post(proc, **kwargs: Any) -> httpx.Response:
    return httpx.post(proc.url + "/score", timeout=60, trust_env=False, **kwargs)


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array.astype(np.uint8), mode).save(out, format="PNG")
    return out.getvalue()


def jpeg(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(out, format="JPEG", quality=95)
    return out.getvalue()


def b64(raw: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(raw).decode()}


DIGIT = np.arange(64, dtype=np.uint8).reshape(8, 8)  # pixels 0..63: they sum to 2016
OTHER = np.full((8, 8), 2, dtype=np.uint8)  # sum 128
NOISE = png(np.random.default_rng(7).integers(0, 256, size=(8, 8)))  # pixels that do not compress
PNG = {"content-type": "image/png"}
FORM = "multipart/form-data"


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()["error"]


# -- N-d rows as JSON, checked against the whole shape -------------------------------------------


def test_json_rows_of_8x8_pass_and_a_wrong_inner_shape_is_refused(servers) -> None:
    ok = post(servers["digits"], json={"data": [DIGIT.tolist(), OTHER.tolist()]})
    assert ok.status_code == 200, ok.text
    assert ok.json()["result"] == [2016.0, 128.0] and ok.json()["kind"] == "text"
    short = post(servers["digits"], json={"data": [DIGIT.tolist(), OTHER[:7].tolist()]})
    err = error(short, 422)
    assert err["field"] == "data[1]"
    assert err["message"] == "data[1]: expected 8 arrays, got 7 (each row of 'data' has shape [8, 8])"
    flat = post(servers["digits"], json={"data": [list(range(64))]})
    assert error(flat, 422)["message"].startswith("data[0]: expected 8 arrays, got 64")


def test_no_shape_is_enforced_without_a_signature(servers) -> None:
    response = post(servers["files"], json={"data": [[1, 2], [3]], "anything": "goes"})
    assert response.status_code == 200 and json.loads(response.json()["text"])["anything"] == "goes"


# -- images as arrays -----------------------------------------------------------------------------


def test_a_png_body_reaches_run_as_a_uint8_array(servers) -> None:
    response = post(servers["digits"], content=png(DIGIT), headers={"content-type": "image/png"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] == [2016.0] and body["kind"] == "ndarray"
    assert body["shapes"] == [[8, 8]] and body["dtype"] == "uint8"


def test_a_jpeg_body_and_a_colour_png_become_grayscale_8x8(servers) -> None:
    flat = np.full((8, 8), 100, dtype=np.uint8)
    response = post(servers["digits"], content=jpeg(flat), headers={"content-type": "image/jpeg"})
    assert response.status_code == 200, response.text
    assert response.json()["result"] == [pytest.approx(6400.0, abs=64)]  # JPEG is lossy: ±1 a pixel
    colour = np.zeros((8, 8, 3), dtype=np.uint8)
    colour[..., 1] = 255  # pure green: L = 0.587 * 255 ≈ 150 (Pillow's ITU-R 601-2 luma)
    response = post(servers["digits"], content=png(colour), headers={"content-type": "image/png"})
    assert response.status_code == 200 and response.json()["result"] == [150.0 * 64]


def test_base64_images_in_json(servers) -> None:
    body = {"data": [b64(png(DIGIT)), b64(png(OTHER))], "threshold": 0.5}
    response = post(servers["digits"], json=body)
    assert response.status_code == 200, response.text
    assert response.json()["result"] == [2016.0, 128.0] and response.json()["kind"] == "ndarray"
    assert response.json()["fields"] == {"threshold": 0.5}


def test_several_files_in_one_multipart_upload(servers) -> None:
    files = [("data", ("a.png", png(DIGIT), "image/png")), ("data", ("b.png", png(OTHER), "image/png"))]
    response = post(servers["digits"], files=files, data={"note": "two digits"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] == [2016.0, 128.0] and body["shapes"] == [[8, 8], [8, 8]]
    assert body["fields"] == {"note": "two digits"}


def test_rgb_rows_keep_their_channels_in_order(servers) -> None:
    pixels = np.arange(18, dtype=np.uint8).reshape(2, 3, 3) * 10  # 2 high, 3 wide, RGB
    response = post(servers["rgb"], content=png(pixels), headers={"content-type": "image/png"})
    assert response.status_code == 200, response.text
    assert response.json()["pixels"] == pixels.tolist()
    gray = post(servers["rgb"], content=png(pixels[..., 0]), headers={"content-type": "image/png"})
    assert gray.status_code == 200 and np.asarray(gray.json()["pixels"]).shape == (2, 3, 3)


# -- bad images: 4xx that say what is wrong -------------------------------------------------------


def test_an_image_of_another_size_is_422_naming_it(servers) -> None:
    big = png(np.zeros((16, 16)))
    err = error(post(servers["digits"], content=big, headers={"content-type": "image/png"}), 422)
    assert (
        err["field"] == "data[0]"
        and err["message"] == "data[0]: expected an array of shape [8, 8], got [16, 16]"
    )
    err = error(post(servers["digits"], json={"data": [b64(png(DIGIT)), b64(big)]}), 422)
    assert err["field"] == "data[1]"


@pytest.mark.parametrize(
    ("request_kwargs", "field", "words"),
    [
        ({"content": b"\x89PNG not really", "headers": PNG}, "data[0]", "not a PNG or JPEG image"),
        ({"content": NOISE[: len(NOISE) // 2], "headers": PNG}, "data[0]", "cannot be decoded"),  # cut short
        ({"content": b"GIF89a....", "headers": PNG}, "data[0]", "not a PNG or JPEG"),
        ({"json": {"data": [{"b64": "!!not base64!!"}]}}, "data[0]", "data[0].b64: not valid base64"),
        ({"json": {"data": [b64(b"plain text")]}}, "data[0]", "not a PNG or JPEG image"),
        ({"content": b"--x\r\nbroken", "headers": {"content-type": f"{FORM}; boundary=x"}}, "body",
         "multipart form"),
        ({"content": b"", "headers": {"content-type": FORM}}, "body", "multipart form"),
    ],
)  # fmt: skip
def test_unreadable_images_are_400(servers, request_kwargs, field, words) -> None:
    err = error(post(servers["digits"], **request_kwargs), 400)
    assert err["code"] == "invalid_upload" and err["field"] == field and words in err["message"]


def _peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])


def test_an_image_over_max_image_pixels_is_413_before_it_is_decoded(servers) -> None:
    proc = servers["digits"]
    huge = png(np.zeros((4000, 4000)))  # 16 Mpixels, 16 KB of PNG; the limit here is 9 Mpixels
    before = _peak_rss_kib(proc.pid)
    err = error(post(proc, content=huge, headers={"content-type": "image/png"}), 413)
    assert (
        err["field"] == "data[0]"
        and "image too large" in err["message"]
        and "max_image_pixels" in err["message"]
    )
    assert _peak_rss_kib(proc.pid) - before < 8 * 1024  # its 16 MB of pixels were never decoded
    # The limit is per request: two images of 5 Mpixels each pass it together.
    pair = {"data": [b64(png(np.zeros((2000, 2500)))), b64(png(np.zeros((2000, 2500))))]}
    err = error(post(proc, json=pair), 413)
    assert err["field"] == "data[1]"


def test_other_image_types_are_415(servers) -> None:
    err = error(post(servers["digits"], content=b"GIF89a", headers={"content-type": "image/gif"}), 415)
    assert "image/gif bodies are not taken" in err["message"] and "image/png" in err["message"]


def test_a_server_of_rows_refuses_images_with_415(servers) -> None:
    err = error(post(servers["rows"], content=png(DIGIT), headers={"content-type": "image/png"}), 415)
    assert "send JSON rows" in err["message"]


# -- without an image signature: the bytes sent --------------------------------------------------


def _sha(raw: bytes) -> dict[str, Any]:
    return {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}


def test_files_reach_run_as_the_bytes_sent_without_an_image_signature(servers) -> None:
    proc = servers["files"]
    image = png(DIGIT)
    response = post(proc, content=image, headers={"content-type": "image/png"})
    assert response.status_code == 200 and response.json() == {"data": [_sha(image)]}
    csv = b"a,b\n1,2\n"
    files = [("data", ("x.png", image, "image/png")), ("table", ("t.csv", csv, "text/csv"))]
    response = post(proc, files=files, data={"note": ["one", "two"]})
    assert response.status_code == 200, response.text
    assert response.json() == {"data": [_sha(image)], "table": [_sha(csv)], "note": ["one", "two"]}
    nested = {"meta": {"thumb": b64(image)}, "data": [b64(b"\x00\x01")]}
    response = post(proc, json=nested)
    assert response.status_code == 200
    assert response.json() == {"meta": {"thumb": _sha(image)}, "data": [_sha(b"\x00\x01")]}
    # JSON without a {"b64": ...} value is the text, as before; "b64" as a plain key is not one.
    plain = {"data": [{"b64": 1}], "note": "b64"}
    response = post(proc, json=plain)
    assert response.status_code == 200 and json.loads(response.json()["text"]) == plain
