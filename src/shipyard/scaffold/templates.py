"""The text of a new project's files (`shipyard init`), as the seeds' template lays them out: the
data scientist's files under model/ and tests/, the operations files at the top.

Python strings rather than package data: they are few, small, and `__NAME__` / `__MODEL__` are
the only substitutions. The model is the diabetes seed's (Ridge regression on scikit-learn's
diabetes data), written so that `shipyard run`, `ruff check .` and the unit tests pass as they are.
"""

from __future__ import annotations

TRAIN_PY = '''"""Train a Ridge regression on the diabetes data.

Runs standalone (`python model/train.py`) or under `shipyard run`, which passes the parameters of
shipyard.yaml and the data file. `fit` holds the modelling and is unit-tested in tests/.
"""

from pathlib import Path

import pandas as pd
import shipyard
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

DATA = Path(__file__).resolve().parent / "data" / "diabetes.csv"


def fit(df: pd.DataFrame, alpha: float, test_size: float, seed: int) -> tuple[Ridge, dict[str, float]]:
    """Fit on a split of `df`; return the model and its metrics on the held-out part, with the
    number of rows they were computed on (the gate refuses fewer than gate.min_eval_rows)."""
    x, y = df.drop(columns="target"), df["target"]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_size, random_state=seed)
    model = Ridge(alpha=alpha).fit(x_train.to_numpy(), y_train)
    pred = model.predict(x_test.to_numpy())
    return model, {
        "mse": float(mean_squared_error(y_test, pred)),
        "r2": float(r2_score(y_test, pred)),
        "eval_rows": float(len(y_test)),
    }


def main() -> None:
    with shipyard.start_run(name="train"):
        params = shipyard.parameters(alpha=0.5, test_size=0.2, seed=42)
        df = pd.read_csv(shipyard.input_path("data", DATA))
        model, metrics = fit(df, float(params["alpha"]), float(params["test_size"]), int(params["seed"]))
        for name, value in metrics.items():
            shipyard.log_metric(name, value)
        shipyard.log_model(model, "model")


if __name__ == "__main__":
    main()
'''

SCORE_PY = '''"""Scoring script with the Azure ML contract: init() once, then run(raw_data) per request.

Request:  {"data": [[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6], ...]}
Response: {"result": [prediction, ...]}
Invalid input raises ValueError; the server turns it into a 4xx answer with the message.
"""

import json
import os
from pathlib import Path
from typing import Any

import joblib
import numpy as np

N_FEATURES = 10

model = None


def init() -> None:
    """Load the model from the folder Azure ML (or Shipyard) puts it in."""
    global model
    model = joblib.load(Path(os.environ["AZUREML_MODEL_DIR"]) / "model.pkl")


def run(raw_data: str | bytes | dict[str, Any]) -> dict[str, list[float]]:
    """Predict for each row of `data` in the JSON request."""
    if model is None:
        raise RuntimeError("init() must be called before run()")
    rows = _parse(raw_data)
    return {"result": [float(p) for p in model.predict(rows)]}


def _parse(raw_data: str | bytes | dict[str, Any]) -> np.ndarray:
    if isinstance(raw_data, str | bytes | bytearray):
        try:
            payload = json.loads(raw_data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"request body is not valid JSON: {exc}") from None
    else:
        payload = raw_data
    if not isinstance(payload, dict) or "data" not in payload:
        raise ValueError('expected a JSON object {"data": [[10 numbers], ...]}')
    try:
        rows = np.asarray(payload["data"], dtype=float)
    except (TypeError, ValueError):
        raise ValueError("'data' must be a list of rows of numbers (no strings or ragged rows)") from None
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] != N_FEATURES:
        raise ValueError(
            f"'data' must be a non-empty list of rows with {N_FEATURES} numbers each "
            f"(age, sex, bmi, bp, s1..s6); got shape {rows.shape}"
        )
    if not np.isfinite(rows).all():
        raise ValueError("'data' must contain finite numbers only (no nulls, NaN or infinity)")
    return rows
'''

SCHEMA_PY = '''"""pandera schema of model/data/diabetes.csv, named in shipyard.yaml as
'model/schema.py:DiabetesSchema' (the data check runs it before every training)."""

import pandera.pandas as pa
from pandera.typing import Series

# The ten features are mean-centred and scaled (each column's Euclidean norm is 1); observed values
# lie within [-0.14, 0.20], so +-0.25 leaves a margin. The target (disease progression one year
# later) lies within [25, 346].
FEATURE = {"in_range": {"min_value": -0.25, "max_value": 0.25}, "nullable": False}


class DiabetesSchema(pa.DataFrameModel):
    """Exactly these columns, all float64, no nulls."""

    age: Series[float] = pa.Field(**FEATURE)
    sex: Series[float] = pa.Field(**FEATURE)
    bmi: Series[float] = pa.Field(**FEATURE)
    bp: Series[float] = pa.Field(**FEATURE)
    s1: Series[float] = pa.Field(**FEATURE)
    s2: Series[float] = pa.Field(**FEATURE)
    s3: Series[float] = pa.Field(**FEATURE)
    s4: Series[float] = pa.Field(**FEATURE)
    s5: Series[float] = pa.Field(**FEATURE)
    s6: Series[float] = pa.Field(**FEATURE)
    target: Series[float] = pa.Field(in_range={"min_value": 0.0, "max_value": 400.0}, nullable=False)

    class Config:
        strict = True  # an extra or renamed column is a violation
        coerce = False  # a column of another dtype is a violation, not silently converted
'''

SAMPLE_REQUEST = '{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}\n'

TEST_TRAIN_PY = '''"""Unit tests of the training and scoring code: fast (no workspace, no MLflow run); the PR
checks run them (`python -m pytest`)."""

import json
from pathlib import Path

import joblib
import pandas as pd
import pytest

import score
from train import DATA, fit

SAMPLE = Path(__file__).resolve().parents[1] / "model" / "sample_request.json"


def test_fit_beats_the_gate_threshold_and_the_mean():
    df = pd.read_csv(DATA)
    _, metrics = fit(df, alpha=0.5, test_size=0.2, seed=42)
    assert metrics["mse"] < 4000  # gate.threshold in shipyard.yaml
    assert metrics["r2"] > 0.3  # well above predicting the mean (r2 = 0)


def test_fit_is_reproducible_and_regularisation_matters():
    df = pd.read_csv(DATA)
    _, first = fit(df, alpha=0.5, test_size=0.2, seed=42)
    _, again = fit(df, alpha=0.5, test_size=0.2, seed=42)
    _, flat = fit(df, alpha=1000.0, test_size=0.2, seed=42)
    assert first == again
    assert flat["mse"] > first["mse"]


def test_score_answers_the_sample_request_and_refuses_bad_rows(tmp_path, monkeypatch):
    model, _ = fit(pd.read_csv(DATA), alpha=0.5, test_size=0.2, seed=42)
    joblib.dump(model, tmp_path / "model.pkl")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    score.init()
    answer = score.run(SAMPLE.read_text())
    assert len(answer["result"]) == len(json.loads(SAMPLE.read_text())["data"])
    with pytest.raises(ValueError, match="10 numbers each"):
        score.run(json.dumps({"data": [[1, 2]]}))
'''

SHIPYARD_YAML = """# Shipyard project __NAME__: the operations side (docs/configuration.md).
# The model itself lives in model/ (train.py, score.py, schema.py, data/) and tests/.
# `shipyard run` runs the whole loop locally; `shipyard ci run pr|train|release` runs the CI
# workflows' stages here; `shipyard ci generate` writes them for your CI system again.
name: __NAME__

# Step 1: check the data before training.
data_check:
  path: model/data/diabetes.csv
  schema: "model/schema.py:DiabetesSchema"   # pandera model: columns, dtypes, ranges
  reference: model/data/reference_stats.json # written by `shipyard init` from the same data
  tolerance_std: 1.0                         # allowed mean/std shift, in reference std

# Step 2: train. Parameters override the defaults in train.py's shipyard.parameters(...).
train:
  script: model/train.py
  parameters:
    alpha: 0.5
  code: [model/schema.py]                    # also part of the step's cache key
  environment: model/requirements.txt

# Step 3: gate. Lower mse wins; the candidate must also beat the absolute bar.
# alpha=0.5 gives mse ~2900 on the held-out split; a useless model (alpha=1000) ~5350.
gate:
  metric: mse
  direction: lower
  min_relative_change: 0.0
  threshold: 4000
  min_eval_rows: 10                          # refuse an mse computed on fewer held-out rows (eval_rows)

# Step 4: register the model version; move `production` when the gate passes.
registry:
  model_name: __MODEL__
  metric_tags: [mse, r2]
  register_alias: staging
  promote_on_pass: true

# Step 5: package, deploy and smoke-test with the sample request (shared by every environment).
deployment:
  entry_script: model/score.py
  requirements: model/requirements.txt
  input_sample: model/sample_request.json

# Release: dev → qa → prod (docs/environments.md). `shipyard run` deploys into dev.
environments:
  dev:
    ttl: 24h                                 # `shipyard reap` deletes dev deployments after a day
  qa:
    promotes_from: dev
  prod:
    promotes_from: qa
    requires_approval: true

# Generated CI/CD (docs/ci.md): `shipyard ci generate` rewrites the CI files from this section.
ci:
  provider: __PROVIDER__
  # The environments deploy to the local target: their servers must outlive the release job, so
  # the jobs run on your self-hosted runner with this label. To use the CI system's hosted
  # runners, give each environment a target that outlives the job (docs/remote-container.md)
  # and set `runner: hosted`.
  runner: self-hosted
"""

PYPROJECT_TOML = """# Lint and test settings, as the PR checks run them (this is not a Python package).
[tool.ruff]
line-length = 110
target-version = "py311"
src = ["model", "tests"]

[tool.ruff.lint]
select = ["E", "F", "W", "I", "B", "UP"]

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["model"]

[tool.coverage.run]
source = ["model"]
"""

GITIGNORE = """# Shipyard's local workspace and the CI hand-off folder
.shipyard/
shipyard-outputs/
outputs/
# test and lint by-products
coverage.xml
.coverage
.pytest_cache/
.ruff_cache/
__pycache__/
"""

README_MD = """# __NAME__

Made with `shipyard init`: the diabetes seed (a Ridge regression on scikit-learn's diabetes data)
ready for the whole loop — data check → train → gate → register → deploy → smoke test — and for
CI/CD through dev → qa → prod.

## Who owns what

| Data scientist | |
|---|---|
| `model/train.py` | Training: `fit()` (the modelling, unit-tested) and `main()` (logs to Shipyard). |
| `model/score.py` | Scoring with the Azure ML contract: `init()` once, `run(raw_data)` per request. |
| `model/schema.py` | pandera schema of the training data, run by the data check. |
| `model/data/` | `diabetes.csv` and `reference_stats.json` (the distribution check's reference). |
| `model/sample_request.json` | The smoke test's request. |
| `model/requirements.txt` | Pinned packages of the training environment and the scoring image. |
| `tests/test_train.py` | Fast unit tests of `fit()` and `score.py` (the PR checks run them). |

| Operations | |
|---|---|
| `shipyard.yaml` | Data check, training, gate, registry, deployment, environments, CI. |
| `__CI_FILES__` | The CI workflows (`shipyard ci generate --provider __PROVIDER__` writes them again). |
| `pyproject.toml` | ruff and pytest settings used by the PR checks. |

## Try it

    shipyard run                    # the whole loop; deploys into dev
    shipyard ci run pr              # the PR checks here: lint, unit tests, data check
    shipyard ci run train           # train and register (what CI does on main)
    shipyard ci run release         # dev → qa → prod; prod asks for approval (or pass --approve)
"""

SEED_PACKAGES = ("scikit-learn", "numpy", "pandas", "joblib")
