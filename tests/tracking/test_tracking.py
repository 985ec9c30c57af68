"""Tracking on a real MLflow SQLite store: buffering, flush, no loss, run context, script helpers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

import shipyard
from shipyard.errors import UsageError
from shipyard.tracking import MetricBuffer, end_all_runs, env, start_run
from shipyard.tracking.run import PARENT_TAG

SCRIPT_VARS = (
    "SHIPYARD_RUN_ID",
    "SHIPYARD_EXPERIMENT",
    "SHIPYARD_PARAMS",
    "SHIPYARD_INPUTS",
    "SHIPYARD_OUTPUTS",
    "SHIPYARD_AUTOSTART",
    "SHIPYARD_DATABASE_URI",
    "SHIPYARD_ARTIFACT_URI",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_RUN_ID",
)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One workspace for the module: creating MLflow's tables costs seconds. Tests stay independent
    # through one experiment each (see `ws_env`).
    return tmp_path_factory.mktemp("tracking") / ".shipyard"


@pytest.fixture
def ws_env(store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    """A clean script environment: cwd in tmp_path, the module's workspace, a per-test experiment."""
    for var in SCRIPT_VARS:
        # setenv first so that teardown restores the original state even for variables that
        # code under test sets (mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI).
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHIPYARD_WORKSPACE", str(store_dir))
    monkeypatch.setenv("SHIPYARD_EXPERIMENT", request.node.name)
    yield env.workspace()
    end_all_runs()  # a failing test must not leave a run active for the next one


@pytest.fixture
def client(ws_env) -> MlflowClient:
    return ws_env.mlflow


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


class RecordingClient(MlflowClient):
    """A real client that also records the size of each metric batch it writes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_sizes: list[int] = []

    def log_batch(self, run_id, metrics=(), params=(), tags=(), synchronous=None):
        self.batch_sizes.append(len(metrics))
        return super().log_batch(run_id, metrics=metrics, params=params, tags=tags, synchronous=synchronous)


def new_run(client: MlflowClient, ws, name: str) -> str:
    return client.create_run(ws.experiment_id(name)).info.run_id


# -- MetricBuffer ----------------------------------------------------------------------------------
def test_buffer_writes_5000_metrics_in_batches_of_at_most_1000(ws_env, client):
    run_id = new_run(client, ws_env, "buffer-5000")
    recording = RecordingClient(tracking_uri=ws_env.database_uri)
    buf = MetricBuffer(recording, run_id, interval_s=60)  # only size-triggered and explicit flushes
    start = time.perf_counter()
    for i in range(5000):
        buf.log_metric("loss", i / 7, step=i)
        buf.log_metric("acc", 1 - i / 10_000, step=i)
    assert time.perf_counter() - start < 5  # calls don't wait for the store
    buf.close()
    assert buf.pending == 0 and buf.written == 10_000
    assert history(client, run_id, "loss") == [(i, i / 7) for i in range(5000)]
    assert history(client, run_id, "acc") == [(i, 1 - i / 10_000) for i in range(5000)]
    assert recording.batch_sizes and max(recording.batch_sizes) <= 1000


def test_buffer_flushes_in_the_background(ws_env, client):
    run_id = new_run(client, ws_env, "buffer-bg")
    buf = MetricBuffer(client, run_id, interval_s=0.1)
    buf.log_metric("x", 1.0, step=3)
    deadline = time.monotonic() + 10
    while buf.written < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert history(client, run_id, "x") == [(3, 1.0)]
    buf.close()


def test_buffer_flush_error_is_raised_kept_and_retried(ws_env, client):
    run_id = new_run(client, ws_env, "buffer-error")
    buf = MetricBuffer(client, run_id, interval_s=0.05)
    client.delete_run(run_id)  # the store now refuses writes to this run
    for i in range(1500):
        buf.log_metric("m", float(i), step=i)
    with pytest.raises(Exception, match="active"):
        buf.flush()
    time.sleep(0.2)  # background retries fail too ...
    assert buf._thread.is_alive()  # ... without killing the thread
    assert buf.pending == 1500  # nothing dropped
    client.restore_run(run_id)
    buf.close()
    assert history(client, run_id, "m") == [(i, float(i)) for i in range(1500)]


def test_buffer_rejects_bad_metric_names_at_the_call(ws_env, client):
    buf = MetricBuffer(client, new_run(client, ws_env, "buffer-names"))
    with pytest.raises(UsageError, match="invalid metric name"):
        buf.log_metric("bad\nname", 1.0)
    with pytest.raises(ValueError):
        buf.log_metric("ok", "not a number")  # type: ignore[arg-type]
    buf.close()
    with pytest.raises(UsageError, match="closed"):
        buf.log_metric("ok", 1.0)


# -- runs --------------------------------------------------------------------------------------------
def test_exception_in_run_keeps_metrics_and_marks_failed(ws_env, client):
    with pytest.raises(RuntimeError, match="diverged"):
        with start_run(name="boom") as run:
            for i in range(3000):
                run.log_metric("loss", float(i), step=i)
            raise RuntimeError("diverged")
    assert client.get_run(run.run_id).info.status == "FAILED"
    assert history(client, run.run_id, "loss") == [(i, float(i)) for i in range(3000)]
    assert shipyard.active_run() is None


def test_run_params_tags_metrics_and_experiment(ws_env, client, request):
    with start_run(name="ok", tags={"team": "a"}) as run:
        run.log_params({"alpha": 0.5, "layers": 3})
        run.log_param("solver", "svd")
        shipyard.set_tag("stage", "dev")
        shipyard.log_metrics({"mse": 2.0, "r2": 0.5}, step=1)
    got = client.get_run(run.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "ok"
    assert got.data.params == {"alpha": "0.5", "layers": "3", "solver": "svd"}
    assert got.data.tags["team"] == "a" and got.data.tags["stage"] == "dev"
    assert got.data.metrics == {"mse": 2.0, "r2": 0.5}
    assert client.get_experiment(run.experiment_id).name == request.node.name


def test_nested_run_has_parent_tag(ws_env, client):
    with start_run(name="parent") as parent:
        with start_run(name="child", nested=True) as child:
            shipyard.log_metric("fold_score", 0.9)
            assert shipyard.active_run() is child
        assert shipyard.active_run() is parent
        with pytest.raises(UsageError, match="nested=True"):
            start_run()
    got = client.get_run(child.run_id)
    assert got.data.tags[PARENT_TAG] == parent.run_id
    assert got.info.status == "FINISHED" and got.info.experiment_id == parent.experiment_id
    assert got.data.metrics == {"fold_score": 0.9}


def test_log_call_without_run_starts_one_that_start_run_adopts(ws_env, client):
    shipyard.log_metric("early", 1.0)
    implicit = shipyard.active_run()
    assert implicit is not None and implicit.implicit
    with start_run(name="adopted") as run:
        assert run is implicit
    assert client.get_run(run.run_id).info.status == "FINISHED"
    assert client.get_run(run.run_id).data.metrics == {"early": 1.0}


def test_no_implicit_run_when_autostart_is_off(ws_env, monkeypatch):
    monkeypatch.setenv("SHIPYARD_AUTOSTART", "0")
    with pytest.raises(UsageError, match="no active run"):
        shipyard.log_metric("x", 1.0)


def test_attached_run_is_flushed_but_not_terminated(ws_env, client, monkeypatch):
    run_id = new_run(client, ws_env, "runner")
    monkeypatch.setenv("SHIPYARD_RUN_ID", run_id)
    with pytest.raises(KeyError):
        with start_run() as run:
            assert run.attached and run.run_id == run_id
            for i in range(1200):
                run.log_metric("loss", float(i), step=i)
            raise KeyError("script bug")
    assert client.get_run(run_id).info.status == "RUNNING"
    assert len(history(client, run_id, "loss")) == 1200


def test_a_shipyard_run_is_mlflows_active_run(ws_env, client):
    """mlflow.log_* and a nested run inside `shipyard.start_run` land in Shipyard's runs, in the
    workspace's store; ending Shipyard's run ends MLflow's."""
    import mlflow

    with start_run(name="both") as run:
        assert mlflow.active_run().info.run_id == run.run_id
        assert mlflow.get_tracking_uri() == client.tracking_uri
        mlflow.log_param("lr", 0.1)
        mlflow.log_metric("acc", 0.9)
        run.log_metric("loss", 0.5)
        with start_run(name="child", nested=True) as child:
            assert mlflow.active_run().info.run_id == child.run_id
            mlflow.log_metric("fold_acc", 0.8)
        assert mlflow.active_run().info.run_id == run.run_id
    assert mlflow.active_run() is None
    data = client.get_run(run.run_id)
    assert data.info.status == "FINISHED"
    assert data.data.params == {"lr": "0.1"} and data.data.metrics == {"acc": 0.9, "loss": 0.5}
    assert client.get_run(child.run_id).data.metrics == {"fold_acc": 0.8}
    assert client.get_run(child.run_id).data.tags[PARENT_TAG] == run.run_id


def test_an_attached_run_leaves_mlflows_stack_without_ending(ws_env, client, monkeypatch):
    import mlflow

    run_id = new_run(client, ws_env, "runner")
    monkeypatch.setenv("SHIPYARD_RUN_ID", run_id)
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    with start_run() as run:
        assert mlflow.active_run().info.run_id == run.run_id == run_id
        mlflow.log_metric("acc", 0.7)
    assert mlflow.active_run() is None
    assert client.get_run(run_id).info.status == "RUNNING"  # the runner's to end
    mlflow.log_metric("late", 1.0)  # MLflow resumes the runner's run (MLFLOW_RUN_ID), no new one
    assert mlflow.active_run().info.run_id == run_id
    mlflow.end_run()
    assert client.get_run(run_id).data.metrics == {"acc": 0.7, "late": 1.0}


# -- script helpers ----------------------------------------------------------------------------------
def test_parameters_are_overridden_by_env_and_logged(ws_env, client, monkeypatch):
    monkeypatch.setenv("SHIPYARD_PARAMS", json.dumps({"alpha": 0.1, "extra": "x"}))
    with start_run() as run:
        params = shipyard.parameters(alpha=0.5, max_iter=100)
    assert params == {"alpha": 0.1, "max_iter": 100, "extra": "x"}
    assert client.get_run(run.run_id).data.params == {"alpha": "0.1", "max_iter": "100", "extra": "x"}


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]"])
def test_parameters_reject_bad_env(ws_env, monkeypatch, raw):
    monkeypatch.setenv("SHIPYARD_PARAMS", raw)
    with pytest.raises(UsageError, match="SHIPYARD_PARAMS"):
        shipyard.parameters(alpha=0.5)


def test_input_path_and_output_dir(ws_env, tmp_path, monkeypatch):
    assert shipyard.input_path("data", "data/x.csv") == "data/x.csv"
    with pytest.raises(UsageError, match="'data'"):
        shipyard.input_path("data")
    monkeypatch.setenv("SHIPYARD_INPUTS", json.dumps({"data": "/in/diabetes.csv"}))
    assert shipyard.input_path("data", "data/x.csv") == "/in/diabetes.csv"
    assert shipyard.output_dir() == "outputs" and (tmp_path / "outputs").is_dir()
    monkeypatch.setenv("SHIPYARD_OUTPUTS", str(tmp_path / "out" / "step"))
    assert shipyard.output_dir() == str(tmp_path / "out" / "step") and (tmp_path / "out" / "step").is_dir()


def test_import_shipyard_is_cheap():
    code = (
        "import sys, shipyard; print(sorted(m for m in ('mlflow', 'sklearn', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert shipyard.__version__ == "0.1.0"
