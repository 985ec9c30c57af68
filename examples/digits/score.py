"""Scoring script with the Azure ML contract: init() once, then run(raw_data) per request.

Request:  {"data": [image, ...]} where an image is 8 rows of 8 pixel intensities (0-16, the
          training data's scale), i.e. an array of shape (N, 8, 8); or 8x8 grayscale PNG/JPEG
          images (0-255): an image/png body, a multipart upload, or {"data": [{"b64": ...}]}. The
          server decodes those into uint8 arrays before run() (docs/serving.md, "Images").
Response: {"result": [digit, ...], "probabilities": [[p0..p9], ...]}
Invalid input raises ValueError: the server answers it 4xx with the message (docs/serving.md).
"""

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from net import IMAGE_SHAPE, MAX_INTENSITY

model = None


def init() -> None:
    """Load the logged PyTorch model. MLflow saves it as a torch.export program (data/model.pt2 in
    the model folder: no pickle), which torch loads by itself, without MLflow in the image and
    without DigitsNet's code; it is already in inference mode."""
    global model
    program = Path(os.environ["AZUREML_MODEL_DIR"]) / "data" / "model.pt2"
    model = torch.export.load(str(program)).module()


def run(raw_data: str | bytes | dict[str, Any]) -> dict[str, list[Any]]:
    """The most likely digit of each image, with the ten class probabilities."""
    if model is None:
        raise RuntimeError("init() must be called before run()")
    images = torch.from_numpy(_parse(raw_data))
    with torch.no_grad():
        probabilities = torch.softmax(model(images), dim=1).numpy()
    return {
        "result": [int(i) for i in probabilities.argmax(axis=1)],
        "probabilities": np.round(probabilities.astype(float), 6).tolist(),
    }


def _parse(raw_data: str | bytes | dict[str, Any]) -> np.ndarray:
    """(N, 8, 8) float32 intensities on the training scale, 0-16."""
    if isinstance(raw_data, str | bytes | bytearray):
        try:
            payload = json.loads(raw_data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"request body is not valid JSON: {exc}") from None
    else:
        payload = raw_data
    if not isinstance(payload, dict) or "data" not in payload:
        raise ValueError('expected a JSON object {"data": [8x8 image, ...]}')
    try:
        images = np.asarray(payload["data"])
        if images.dtype == np.uint8:  # decoded images: 0-255 pixels
            images = images.astype(np.float32) * np.float32(MAX_INTENSITY / 255)
        images = images.astype(np.float32)
    except (TypeError, ValueError):
        raise ValueError("'data' must be a list of 8x8 images of numbers (not ragged)") from None
    if images.shape[1:] != IMAGE_SHAPE or images.shape[0] == 0:
        raise ValueError(f"'data' must be a non-empty list of 8x8 images; got shape {images.shape}")
    if not np.isfinite(images).all() or images.min() < 0 or images.max() > MAX_INTENSITY:
        raise ValueError(f"pixel intensities must be finite numbers from 0 to {MAX_INTENSITY:g}")
    return images
