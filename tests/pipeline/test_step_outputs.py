"""Typed step outputs keep the JSON earlier versions stored (the cache reads it back on every
machine of a shared workspace) and the hand-off files CI reads."""

from shipyard.data.report import DataCheckReport, Violation
from shipyard.gate.policy import GateDecision
from shipyard.pipeline.outputs import (
    BundleRef,
    DeploymentRef,
    RegisteredModel,
    SmokeTestedEndpoint,
    TrainedRun,
)

RUN = "r" * 32
DECISION = {
    "verdict": "passed",
    "reason": "no production model yet",
    "metric": "mse",
    "direction": "lower",
    "candidate_run_id": RUN,
    "candidate_value": 3000.0,
    "champion_version": None,
    "champion_run_id": None,
    "champion_value": None,
    "eval_rows": 89,
    "policy": {"min_improvement": 0.0},
    "id": 7,
    "accepted": True,
}
TRAIN = {
    "run_id": RUN,
    "experiment_id": "1",
    "metrics": {"mse": 3000.0},
    "params": {"alpha": "0.5"},
    "model_uri": f"runs:/{RUN}/model",
    "dataset_hash": None,
    "log_path": "/ws/runs/p/train.log",
    "compute": "local",
}
REGISTER = {
    "model_name": "diabetes",
    "version": "1",
    "run_id": RUN,
    "created": True,
    "source": "models:/m-1",
    "alias_moves": [{"alias": "production", "from": None, "to": "1", "moved": True}],
    "aliases": ["production"],
    "gate": DECISION,
    "rejected": False,
}
SMOKE = {
    "deployment_id": "d1",
    "url": "http://127.0.0.1:8080",
    "deployment_url": "http://127.0.0.1:40001",
    "slot": "blue",
    "passed": True,
    "status_code": 200,
    "attempts": 1,
    "latency_ms": 12.5,
    "detail": "ok",
    "response": [1.0],
    "payload": {"data": [[1, 2]]},
    "auth": True,
}


def test_stored_outputs_load_and_are_written_back_unchanged() -> None:
    cases = [
        (GateDecision, DECISION),
        (TrainedRun, TRAIN),
        (TrainedRun, TRAIN | {"sweep": {"best": 0}, "files_uri": "s3://b/steps/p/train", "files_hash": "h"}),
        (RegisteredModel, REGISTER),
        (RegisteredModel, {"rejected": True, "gate": DECISION, "run_id": RUN}),
        (BundleRef, {"bundle_id": "b1", "path": "/ws/bundles/b1", "content_hash": "c"}),
        (
            DeploymentRef,
            {"deployment_id": "d1", "endpoint": "e", "url": "u", "slot": "blue", "pid": 1, "port": 2},
        ),
        (SmokeTestedEndpoint, SMOKE),
    ]
    for kind, stored in cases:
        record = kind.from_dict(stored)
        assert list(record.to_dict().items()) == list(stored.items()), kind.__name__


def test_data_check_report_round_trips() -> None:
    report = DataCheckReport("d.csv", 3, ["a"], "h", [Violation("a", "min_rows", "too few")])
    assert DataCheckReport.from_dict(report.to_dict()) == report


def test_records_of_an_older_version_load() -> None:
    """Keys an older version did not write take defaults; keys it wrote that are gone are ignored."""
    old_gate = {k: v for k, v in DECISION.items() if k not in ("eval_rows", "policy", "id")} | {"gone": 1}
    assert GateDecision.from_dict(old_gate).accepted
    old_train = {"run_id": RUN, "metrics": {"mse": 1.0}, "model_uri": "runs:/x/model"}
    assert TrainedRun.from_dict(old_train).compute == "local"
    reused = GateDecision.from_dict(DECISION | {"decided_by": "p" * 32, "decided_reason": "first"})
    assert reused.to_dict()["decided_by"] == "p" * 32


def test_hand_off_files_content() -> None:
    assert RegisteredModel.from_dict(REGISTER).model_json() == {
        "name": "diabetes",
        "version": "1",
        "created": True,
        "aliases": ["production"],
        "alias_moves": REGISTER["alias_moves"],
    }
    endpoint = SmokeTestedEndpoint.from_dict(SMOKE).endpoint_json()
    assert list(endpoint) == ["url", "deployment_id", "smoke_test", "latency_ms", "auth", "curl"]
    assert endpoint["curl"] == (
        "curl -s -X POST http://127.0.0.1:8080/score -H 'Content-Type: application/json' "
        '-H "Authorization: Bearer $SHIPYARD_ENDPOINT_KEY" -d \'{"data":[[1,2]]}\''
    )
    assert TrainedRun.from_dict(TRAIN).run_json() == {
        "run_id": RUN,
        "metrics": {"mse": 3000.0},
        "params": {"alpha": "0.5"},
    }
