"""Stores that go away in the middle of a pipeline: a clear error naming the endpoint, nothing
half-registered, and the re-run resumes from the cache once the store is back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pg_support import free_port, postgres_server, require_postgres, start_postgres  # noqa: F401
from s3_support import s3_server  # noqa: F401

from shipyard.config.loader import load_project, resolve_workspace_settings
from shipyard.errors import StoreUnavailable
from shipyard.pipeline.runner import SilentReporter, run_pipeline
from shipyard.workspace import Workspace

pytestmark = pytest.mark.integration
MODEL = "diabetes-ridge"


@pytest.fixture
def own_postgres():
    """A PostgreSQL server of this test's own, which it may stop and start again."""
    server = start_postgres(require_postgres())
    yield server
    server.stop()


class StopDatabaseBefore(SilentReporter):
    def __init__(self, server, step: str):
        self.server, self.step = server, step

    def step_started(self, step: str) -> None:
        if step == self.step:
            self.server.pg_ctl("stop", "-m", "fast", "-w")


def _workspace(proj: Path, uri: str) -> Workspace:
    return Workspace.get_or_create(
        resolve_workspace_settings(load_project(proj / "shipyard.yaml"), cli={"database_uri": uri})
    )


def test_database_gone_before_register_then_back(tmp_path, copy_project, own_postgres, monkeypatch):
    monkeypatch.setenv("SHIPYARD_DB_RETRY_S", "1")
    proj = copy_project(tmp_path / "project", deployment=False)
    uri = own_postgres.create_database()
    ws = _workspace(proj, uri)
    config = load_project(proj / "shipyard.yaml")

    with pytest.raises(StoreUnavailable) as caught:
        run_pipeline(ws, config, reporter=StopDatabaseBefore(own_postgres, "register"))
    message = str(caught.value)
    assert f"cannot reach the workspace database at 127.0.0.1:{own_postgres.port}/" in message
    assert own_postgres.password not in message

    own_postgres.pg_ctl("start", "-w", "-o", f"-p {own_postgres.port}", "-l", str(own_postgres.log_file))
    again = _workspace(proj, uri)  # a new process, as the re-run would be
    result = run_pipeline(again, config)
    assert result.status == "succeeded", result.error
    assert [(s["step"], s["status"]) for s in result.steps] == [
        ("data_check", "cached"), ("train", "cached"), ("evaluate", "cached"), ("register", "succeeded"),
    ]  # fmt: skip
    versions = again.mlflow.search_model_versions(f"name = '{MODEL}'")
    assert [str(v.version) for v in versions] == ["1"]  # nothing half-registered, nothing twice
    assert str(again.mlflow.get_model_version_by_alias(MODEL, "production").version) == "1"
    for w in (ws, again):
        w.store.dispose()


def test_artifact_store_unreachable_at_package_then_back(tmp_path, copy_project, postgres_server, s3_server,
                                                         shipyard_proc):  # fmt: skip
    proj = copy_project(tmp_path / "project")
    env = {
        **s3_server.env(),
        "SHIPYARD_DATABASE_URI": postgres_server.create_database(),
        "SHIPYARD_ARTIFACT_URI": f"s3://{s3_server.create_bucket()}/ml",
        "SHIPYARD_CACHE_DIR": str(tmp_path / "cache"),
        "AWS_MAX_ATTEMPTS": "2",
    }
    first = shipyard_proc("run", "--until", "register", "--output", "json", cwd=proj, env=env)
    assert first.code == 0, first.err
    closed = f"http://127.0.0.1:{free_port()}"
    down = {
        **env,
        "AWS_ENDPOINT_URL_S3": closed,
        "MLFLOW_S3_ENDPOINT_URL": closed,
        "AWS_ENDPOINT_URL": closed,
    }
    try:
        failed = shipyard_proc("run", "--output", "json", cwd=proj, env=down)
        assert failed.code != 0
        summary = json.loads(failed.out)
        assert summary["status"] == "failed"
        assert closed in summary["error"] and "step package" not in summary["error"], summary["error"]
        assert [s["status"] for s in summary["steps"]][:5] == ["cached"] * 4 + ["failed"]
        assert s3_server.secret_key not in failed.out + failed.err

        back = shipyard_proc("run", "--output", "json", cwd=proj, env=env)
        assert back.code == 0, back.err
        done = back.json()
        assert done["status"] == "succeeded"
        assert done["cached_steps"] == ["data_check", "train", "evaluate", "register"]
        assert done["model"]["version"] == "1" and done["endpoint"]["smoke_test"] == "passed"
    finally:
        shipyard_proc("endpoints", "delete", "dev", cwd=proj, env=env)
