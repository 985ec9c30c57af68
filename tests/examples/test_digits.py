"""examples/digits end to end with real PyTorch (CPU): the learning-rate sweep trains the CNN, the
gate takes the most accurate trial, the model is registered as a PyTorch logged model with its
image signature, and the deployed score.py (with net.py from deployment.code) classifies images."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from conftest import REPO_ROOT
from tools import require_tool

pytestmark = pytest.mark.integration

DIGITS = REPO_ROOT / "examples" / "digits"


def _copy_digits(dest: Path) -> Path:
    leftovers = shutil.ignore_patterns(".shipyard", "mlruns", "outputs", "__pycache__")
    shutil.copytree(DIGITS, dest, ignore=leftovers)
    return dest


def _png(image: list[list[float]]) -> bytes:
    from PIL import Image

    pixels = np.rint(np.asarray(image) * 255 / 16).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def test_the_digits_example_trains_gates_registers_and_classifies_images(
    tmp_path: Path, shipyard_proc, mlflow_client, teardown_endpoints
) -> None:
    require_tool("nginx", "nginx")
    project = _copy_digits(tmp_path / "digits")
    ws = tmp_path / "ws"
    try:
        res = shipyard_proc("run", "--workspace", ws, "-o", "json", cwd=project, timeout=600)
        assert res.code == 0, res.err[-3000:]
        out = json.loads(res.out)
        assert out["status"] == "succeeded" and out["gate"]["verdict"] == "passed"
        client = mlflow_client(ws)
        # The sweep: one trial per learning rate (child runs of the train run); the step's output
        # and the gate's candidate is the most accurate trial.
        best = client.get_run(out["run"]["run_id"])
        parent = client.get_run(best.data.tags["mlflow.parentRunId"])
        assert parent.data.tags["shipyard.sweep.best_run_id"] == best.info.run_id
        sweep = yaml.safe_load((project / "shipyard.yaml").read_text())["train"]["sweep"]
        trials = client.search_runs(
            [best.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
        )
        accuracies = {float(t.data.params["lr"]): t.data.metrics["accuracy"] for t in trials}
        assert sorted(accuracies) == sorted(sweep["parameters"]["lr"])
        assert best.data.metrics["accuracy"] == max(accuracies.values()) >= 0.9
        assert best.data.metrics["eval_rows"] == 360 and best.data.tags["device"] == "cpu"

        version = client.get_model_version("digits-cnn", "1")
        model_id = version.source.removeprefix("models:/")
        logged = client.get_logged_model(model_id)
        assert logged.source_run_id == best.info.run_id
        model_dir = Path(logged.artifact_location.removeprefix("file://"))
        mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
        assert "pytorch" in mlmodel["flavors"] and mlmodel["run_id"] == best.info.run_id
        [tensor] = json.loads(mlmodel["signature"]["inputs"])
        assert tensor["tensor-spec"] == {"dtype": "float32", "shape": [-1, 8, 8]}

        endpoint = out["endpoint"]
        assert endpoint["smoke_test"] == "passed"
        headers = {"Authorization": f"Bearer {out['new_keys']['primary']}"}
        sample = json.loads((project / "sample_request.json").read_text())
        answer = httpx.post(f"{endpoint['url']}/score", json=sample, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["result"] == [0, 1, 2]  # the three images of the sample, in order
        assert all(abs(sum(p) - 1) < 1e-4 and len(p) == 10 for p in body["probabilities"])
        url = f"{endpoint['url']}/score"
        wrong = httpx.post(url, json={"data": [[1, 2, 3]]}, headers=headers, timeout=30)
        assert wrong.status_code == 422 and "[8, 8]" in wrong.text, wrong.text

        # Images: 8x8 grayscale PNGs of the first three digits (0-16 scaled to 0-255), as a PNG
        # body and as base64 in JSON; the server hands run() uint8 arrays, score.py rescales them.
        pngs = [_png(image) for image in sample["data"]]
        one = httpx.post(url, content=pngs[2], headers={**headers, "Content-Type": "image/png"}, timeout=30)
        assert one.status_code == 200, one.text
        assert one.json()["result"] == [2]
        b64 = {"data": [{"b64": base64.b64encode(png).decode()} for png in pngs]}
        several = httpx.post(url, json=b64, headers=headers, timeout=30)
        assert several.status_code == 200, several.text
        assert several.json()["result"] == [0, 1, 2]
    finally:
        teardown_endpoints(ws)
