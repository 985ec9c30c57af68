"""Too little data never becomes production: the audit's 3-row and 1-row CSVs through the real
pipeline, in one workspace whose production model was trained on the full data.

With the defaults the data check stops both files (row count). With the data check's minimum
lowered in shipyard.yaml, the 3-row file trains on 2 rows and is evaluated on 1: the gate refuses
it and records why; the 1-row file fails training with the script's own last line first.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.integration

MODEL = "diabetes-ridge"
# Rows of the example within the schema and one reference std of every column's mean, so that
# nothing but their number can object to them.
THREE, ONE = [50, 124, 302], [50]


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("minimum-data") / "ws"


@pytest.fixture(scope="module")
def project(tmp_path_factory, copy_project, cli, ws):
    """make(rows, min_rows=None): a copy of the example whose data is `rows` of the full file;
    the workspace's production model comes from a first run on the full data."""
    full = copy_project(tmp_path_factory.mktemp("full") / "project", deployment=False)
    res = cli("run", "--project", full, "--workspace", ws, "--output", "json")
    assert res.code == 0 and res.json()["model"]["aliases"] == ["production", "staging"], res.out + res.err

    def make(rows: list[int], min_rows: int | None = None) -> Path:
        proj = copy_project(tmp_path_factory.mktemp("small") / "project", deployment=False)
        csv = proj / "data" / "diabetes.csv"
        pd.read_csv(csv).iloc[rows].to_csv(csv, index=False)
        if min_rows is not None:
            cfg = proj / "shipyard.yaml"
            data = yaml.safe_load(cfg.read_text())
            data["data_check"]["min_rows"] = min_rows
            cfg.write_text(yaml.safe_dump(data, sort_keys=False))
        return proj

    return make


@pytest.fixture
def registry(ws, mlflow_client):
    """() -> (production version, all version numbers) of the model, read with a plain MLflow client."""
    client = mlflow_client(ws)

    def _state() -> tuple[str, list[str]]:
        versions = sorted(str(v.version) for v in client.search_model_versions(f"name='{MODEL}'"))
        return str(client.get_model_version_by_alias(MODEL, "production").version), versions

    return _state


@pytest.mark.parametrize(("rows", "said"), [(THREE, "3 rows"), (ONE, "1 row")])
def test_default_data_check_stops_too_few_rows(project, cli, ws, registry, rows, said):
    before = registry()
    res = cli("run", "--project", project(rows), "--workspace", ws, "--output", "json")
    s = res.json()
    assert res.code == 1 and s["status"] == "failed"
    check = s["steps"][0]
    assert check["step"] == "data_check" and check["status"] == "failed"
    assert (
        f"table: min_rows — {said}; at least 50 needed (the default: 10% of the reference's 442 rows, "
        "at least 50; set data_check.min_rows to change it)"
    ) in check["message"]
    assert [x["status"] for x in s["steps"][1:]] == ["skipped"] * 3
    assert "run" not in s and "model" not in s and "Traceback" not in res.err
    assert registry() == before == ("1", ["1"])


def test_gate_refuses_a_one_row_evaluation_and_records_why(project, cli, ws, registry, query, mlflow_client):
    res = cli("run", "--project", project(THREE, min_rows=3), "--workspace", ws, "--output", "json")
    s = res.json()
    assert s["status"] == "rejected", res.out + res.err
    assert {x["step"]: x["status"] for x in s["steps"]} == {
        "data_check": "succeeded",
        "train": "succeeded",
        "evaluate": "succeeded",
        "register": "skipped",
    }
    run_id = s["run"]["run_id"]
    # Recorded in the run: the script's metrics were computed on 1 row (2 trained on).
    assert mlflow_client(ws).get_run(run_id).data.metrics["eval_rows"] == 1.0
    reason = s["gate"]["reason"]
    assert s["gate"]["verdict"] == "rejected"
    assert reason.startswith("candidate mse ") and reason.endswith(
        " was evaluated on 1 row; the gate needs at least 10 (gate.min_eval_rows)"
    )
    # ...and in the decision record; the candidate looked better than production (before the rule
    # it became production "better by" tens of per cent).
    [row] = query(
        ws, "select verdict, reason, candidate_value, champion_value from shipyard_gate_decisions "
        "where candidate_run_id = ?", run_id,
    )  # fmt: skip
    assert row["verdict"] == "rejected" and row["reason"] == reason
    assert row["candidate_value"] < row["champion_value"]
    assert registry() == ("1", ["1"])  # not registered, production unchanged


def test_training_on_one_row_fails_with_the_scripts_last_line_first(project, cli, ws, registry):
    res = cli("run", "--project", project(ONE, min_rows=1), "--workspace", ws, "--output", "json")
    s = res.json()
    assert res.code == 1 and s["status"] == "failed"
    train = next(x for x in s["steps"] if x["step"] == "train")
    assert train["status"] == "failed"
    first = train["message"].splitlines()[0]
    assert first.startswith("train.py exited with code 1 on the local target: ValueError: With n_samples=1")
    assert registry() == ("1", ["1"])
