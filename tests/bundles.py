"""A bundle folder as packaging builds it, for the serving and local-deploy tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import Ridge

from shipyard.deploy.local import LocalProcess, start_server, stop_server, wait_healthy

SEED = {"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}

# The example project's scoring script, in the Azure ML contract.
SCORE_PY = """\
import json, os
from pathlib import Path
import joblib, numpy as np
model = None
def init():
    global model
    model = joblib.load(Path(os.environ["AZUREML_MODEL_DIR"]) / "model.pkl")
def run(raw_data):
    data = np.array(json.loads(raw_data)["data"], dtype=float)
    return {"result": model.predict(data).tolist()}
"""


def make_bundle(root: Path, score_py: str = SCORE_PY) -> tuple[Path, Ridge]:
    """manifest.json, score.py, requirements.txt and model/<name>/<version>/model.pkl under root."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 10))
    model = Ridge(alpha=1.0).fit(x, x @ np.arange(1, 11) + 3.0)
    model_dir = root / "model" / "diabetes-ridge" / "3"
    model_dir.mkdir(parents=True)
    joblib.dump(model, model_dir / "model.pkl")
    (root / "score.py").write_text(score_py)
    (root / "requirements.txt").write_text("scikit-learn\njoblib\nnumpy\n")
    manifest = {
        "model_name": "diabetes-ridge",
        "model_version": "3",
        "entry_script": "score.py",
        "model_dir": "model/diabetes-ridge/3",
        "input_sample": SEED,
        "signature": {"inputs": {"data": {"type": "array", "shape": [-1, 10], "dtype": "float"}}},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root, model


@contextmanager
def serving(
    bundle: Path,
    root: Path,
    settings: dict,
    name: str = "test",
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[LocalProcess]:
    """A real server process for `bundle` with these serving settings, healthy, stopped after."""
    settings_file = root / f"{name}-settings.json"
    settings_file.write_text(json.dumps(settings))
    proc = start_server(
        bundle,
        host="127.0.0.1",
        port=0,
        log_path=root / f"{name}.log",
        deployment_id=name,
        extra_args=["--settings", str(settings_file), *(extra_args or [])],
        env=env,
    )
    try:
        wait_healthy(proc.url, 60)
        yield proc
    finally:
        stop_server(proc.pid)


def make_pyfunc_bundle(root: Path, x, y, name: str = "ints", version: str = "2") -> Path:
    """An MLflow bundle (no score.py) of a Ridge fitted on x, y, its signature inferred from them."""
    import logging

    import mlflow.models
    import mlflow.sklearn

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    model = Ridge().fit(x, y)
    mlflow.sklearn.save_model(
        model,
        str(root / "model"),
        signature=mlflow.models.infer_signature(x, model.predict(x)),
        serialization_format="pickle",
    )
    manifest = {"flavor": "pyfunc", "model_name": name, "model_version": version, "model_dir": "model"}
    (root / "manifest.json").write_text(json.dumps(manifest | {"entry_script": None}))
    return root
