"""Pipelines that must stop: a training script that raises, a data file that fails its check.

Both run in one workspace, each from its own copy of the example: the failed training leaves an
MLflow run behind, and the bad data run must not add another one.
"""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.integration

MODEL = "diabetes-ridge"
LATER = ["evaluate", "register", "package", "deploy", "smoke_test"]
BOOM = "synthetic failure: the bmi column exploded (7c1f)"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return tmp_path_factory.mktemp("failures") / "ws"


@pytest.fixture(scope="module")
def broken_training(tmp_path_factory, ws, copy_project, cli):
    """A run whose train.py raises after it started its MLflow run."""
    proj = copy_project(tmp_path_factory.mktemp("broken-train") / "project")
    script = proj / "train.py"
    text = script.read_text()
    anchor = "        params = shipyard.parameters(alpha=0.5, test_size=0.2, seed=42)\n"
    assert anchor in text
    script.write_text(text.replace(anchor, anchor + f'        raise RuntimeError("{BOOM}")\n'))
    res = cli("run", "--project", proj, "--workspace", ws, "--output", "json")
    return res, res.json()


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory, ws, copy_project, cli, broken_training, mlflow_client):
    """A run on a data file with missing bmi values, in the workspace the broken run used."""
    proj = copy_project(tmp_path_factory.mktemp("bad-data") / "project")
    csv = proj / "data" / "diabetes.csv"
    df = pd.read_csv(csv)
    df.loc[:9, "bmi"] = float("nan")
    df.to_csv(csv, index=False)
    client = mlflow_client(ws)
    before = client.search_runs([client.get_experiment_by_name("diabetes").experiment_id])
    res = cli("run", "--project", proj, "--workspace", ws, "--output", "json")
    after = client.search_runs([client.get_experiment_by_name("diabetes").experiment_id])
    return res, res.json(), before, after


def test_failing_training_script_fails_the_pipeline_with_its_log_tail(broken_training, query, ws):
    res, s = broken_training
    assert s["status"] == "failed"
    steps = {x["step"]: x for x in s["steps"]}
    assert steps["data_check"]["status"] == "succeeded"
    train = steps["train"]
    assert train["status"] == "failed"
    assert "train.py exited with code 1" in train["message"]
    assert f"RuntimeError: {BOOM}" in train["message"] and "Traceback" in train["message"]
    assert s["error"] == train["message"]
    assert "run" not in s and "gate" not in s and "model" not in s
    assert "Traceback" not in res.err.replace(train["message"], "")  # only the script's own, quoted

    stored = query(
        ws,
        "select step, status, message from shipyard_step_runs where pipeline_run_id = ?",
        s["pipeline_run_id"],
    )
    by_step = {r["step"]: r for r in stored}
    assert {step: by_step[step]["status"] for step in LATER} == dict.fromkeys(LATER, "skipped")
    assert BOOM in by_step["train"]["message"]
    [run] = query(ws, "select status, error from shipyard_pipeline_runs where id = ?", s["pipeline_run_id"])
    assert run["status"] == "failed" and BOOM in run["error"]
    assert query(ws, "select id from shipyard_gate_decisions") == []


def test_failing_training_script_marks_its_mlflow_run_failed(broken_training, mlflow_client, ws):
    _, s = broken_training
    client = mlflow_client(ws)
    runs = client.search_runs(
        [client.get_experiment_by_name("diabetes").experiment_id],
        f"tags.`shipyard.pipeline_run_id` = '{s['pipeline_run_id']}'",
    )
    by_step = {r.data.tags.get("shipyard.step", "pipeline"): r for r in runs}
    assert set(by_step) == {"train", "pipeline"}
    assert by_step["train"].info.status == "FAILED" and by_step["pipeline"].info.status == "FAILED"
    assert client.search_registered_models() == []


def test_failed_run_summary_lists_the_skipped_steps(broken_training):
    _, s = broken_training
    assert {x["step"]: x["status"] for x in s["steps"] if x["step"] in LATER} == dict.fromkeys(
        LATER, "skipped"
    )


def test_failed_run_exits_1(broken_training):
    res, _ = broken_training
    assert res.code == 1


def test_bad_data_stops_before_training(bad_data, query, ws):
    res, s, before, after = bad_data
    assert s["status"] == "failed"
    check = s["steps"][0]
    assert check["step"] == "data_check" and check["status"] == "failed"
    assert "column 'bmi': missing_values" in check["message"]
    assert "10 of 442 values missing" in check["message"]
    assert {x["step"]: x["status"] for x in s["steps"][1:]} == dict.fromkeys(["train", *LATER], "skipped")
    assert "Traceback" not in res.err

    stored = query(
        ws, "select step, status from shipyard_step_runs where pipeline_run_id = ?", s["pipeline_run_id"]
    )
    assert {r["step"]: r["status"] for r in stored} == {
        "data_check": "failed",
        "train": "skipped",
        **dict.fromkeys(LATER, "skipped"),
    }
    # No MLflow run was started for the bad data (the broken-training run's two are all there is).
    assert len(before) == 2 and sorted(r.info.run_id for r in after) == sorted(r.info.run_id for r in before)
