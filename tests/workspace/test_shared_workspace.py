"""A workspace on PostgreSQL, as a team shares it: the driver named when missing, the password
never printed, an unreachable server a clear error, locks held by the database (and released when
their holder is killed), and one pipeline run end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pg_support import free_port, postgres_server  # noqa: F401
from s3_support import s3_server  # noqa: F401

from shipyard.config.models import WorkspaceSettings
from shipyard.errors import ShipyardError
from shipyard.store.db import HEAD_REVISION
from shipyard.workspace import Workspace

pytestmark = pytest.mark.integration


def _env(tmp_path: Path, uri: str, **extra: str) -> dict[str, str]:
    return {"SHIPYARD_WORKSPACE": str(tmp_path / "ws"), "SHIPYARD_DATABASE_URI": uri, **extra}


def test_workspace_show_masks_the_password(tmp_path, postgres_server, shipyard_proc):
    uri = postgres_server.create_database()
    res = shipyard_proc("workspace", "show", "--output", "json", env=_env(tmp_path, uri), cwd=tmp_path)
    assert res.code == 0, res.err
    shown = res.json()
    assert postgres_server.password not in res.out + res.err
    assert shown["database_uri"] == uri.replace(postgres_server.password, "***")
    assert shown["store_revision"] == HEAD_REVISION == "0009"  # Alembic migrated our tables on PostgreSQL


def test_a_plain_postgresql_uri_means_psycopg_3(tmp_path, postgres_server, shipyard_proc):
    uri = postgres_server.create_database().replace("postgresql+psycopg://", "postgresql://")
    res = shipyard_proc("models", "list", "--output", "json", env=_env(tmp_path, uri), cwd=tmp_path)
    assert res.code == 0, res.err
    assert res.json() == []


def test_a_missing_driver_is_named_without_a_traceback(tmp_path, postgres_server, shipyard_proc):
    uri = postgres_server.create_database().replace("+psycopg://", "+psycopg2://")  # not installed
    res = shipyard_proc("workspace", "show", env=_env(tmp_path, uri), cwd=tmp_path)
    assert res.code == 2
    assert "driver 'psycopg2' is not installed" in res.err and "pip install psycopg2" in res.err
    assert "Traceback" not in res.err and postgres_server.password not in res.err


def test_missing_psycopg_names_the_extra(monkeypatch):
    import importlib.util

    from shipyard.errors import ConfigError
    from shipyard.store import urls

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name)
    )
    with pytest.raises(ConfigError, match=r"pip install 'shipyard\[postgres\]' \(psycopg 3\)") as caught:
        urls.check_driver("postgresql://team:s3cret@db.example:5432/shipyard")
    assert "s3cret" not in str(caught.value)


def test_an_unreachable_database_is_one_clear_line(tmp_path, shipyard_proc):
    port = free_port()  # nothing listens there
    uri = f"postgresql://team:s3cretpw@127.0.0.1:{port}/shipyard"
    env = _env(tmp_path, uri, SHIPYARD_DB_RETRY_S="1")
    started = time.monotonic()
    res = shipyard_proc("workspace", "show", env=env, cwd=tmp_path)
    assert res.code == 4, res.err
    assert f"cannot reach the workspace database at 127.0.0.1:{port}/shipyard" in res.err
    assert "s3cretpw" not in res.err and "Traceback" not in res.err
    assert time.monotonic() - started < 60


HOLD_LOCK = """
import sys, time
from shipyard.config.models import WorkspaceSettings
from shipyard.workspace import Workspace
ws = Workspace(WorkspaceSettings(root=sys.argv[1], database_uri=sys.argv[2]))
with ws.lock("registry"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_lock_is_held_in_the_database_and_freed_when_its_holder_is_killed(tmp_path, postgres_server):
    uri = postgres_server.create_database()
    # Two workspace roots = two machines: a file lock under either root would not see the other.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path / "machine-a"), uri], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        ws = Workspace.get_or_create(WorkspaceSettings(root=str(tmp_path / "machine-b"), database_uri=uri))
        with pytest.raises(
            ShipyardError, match="timed out after 1 s waiting for the workspace lock 'registry'"
        ):
            with ws.lock("registry", timeout=1):
                pass
        with ws.lock("other", timeout=1):  # other names are independent
            pass
        os.kill(holder.pid, signal.SIGKILL)  # the connection dies with it, and so does the lock
        holder.wait(10)
        with ws.lock("registry", timeout=30):
            pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    ws.store.dispose()


def test_the_pipeline_runs_on_postgresql_and_a_rerun_is_cached(
    tmp_path, copy_project, postgres_server, shipyard_proc
):
    proj = copy_project(tmp_path / "project", deployment=False)
    env = {"SHIPYARD_DATABASE_URI": postgres_server.create_database()}
    first = shipyard_proc("run", "--output", "json", cwd=proj, env=env)
    assert first.code == 0, first.err
    summary = first.json()
    assert summary["status"] == "succeeded"
    assert summary["model"]["version"] == "1" and "production" in summary["model"]["aliases"]
    again = shipyard_proc("run", "--output", "json", cwd=proj, env=env)
    assert again.code == 0, again.err
    assert again.json()["cached_steps"] == ["data_check", "train", "evaluate", "register"]
    history = shipyard_proc("models", "history", "diabetes-ridge", "--output", "json", cwd=proj, env=env)
    moves = [(m["alias"], m["from"], m["to"]) for m in json.loads(history.out)]
    assert ("production", None, "1") in moves
    assert postgres_server.password not in first.out + first.err


def test_a_password_in_shipyard_yaml_is_refused_without_echoing_it(tmp_path, copy_project, shipyard_proc):
    proj = copy_project(tmp_path / "project", deployment=False)
    cfg = proj / "shipyard.yaml"
    cfg.write_text(cfg.read_text() + "workspace:\n  database_uri: postgresql://team:Hunter2pw@db:5432/ml\n")
    res = shipyard_proc("workspace", "show", cwd=proj)
    assert res.code == 2
    assert "workspace.database_uri holds a password" in res.err and "database_password: env:NAME" in res.err
    assert "Hunter2pw" not in res.out + res.err


def test_credentials_by_reference_reach_no_file_param_tag_or_output(
    tmp_path, copy_project, postgres_server, s3_server, shipyard_proc, monkeypatch
):
    """The database password and the S3 keys come from env: references in shipyard.yaml; after a
    whole run with a deployment, no file of the checkout or workspace, no MLflow param or tag and
    no output holds any of them."""
    import yaml
    from mlflow import MlflowClient

    from shipyard.secrets import scan_for_values

    aws = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
    for var in aws:
        monkeypatch.delenv(var, raising=False)
    uri = postgres_server.create_database()
    bare = uri.replace(f":{postgres_server.password}@", "@")
    bucket = s3_server.create_bucket()
    proj = copy_project(tmp_path / "project")
    cfg = proj / "shipyard.yaml"
    data = yaml.safe_load(cfg.read_text())
    data["workspace"] = {
        "database_uri": bare,
        "database_password": "env:TEAM_DB_PASSWORD",
        "artifact_uri": f"s3://{bucket}/ml",
        "s3": {
            "endpoint_url": s3_server.endpoint_url,
            "access_key_id": "env:TEAM_S3_KEY",
            "secret_access_key": "env:TEAM_S3_SECRET",
        },
    }
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {
        "TEAM_DB_PASSWORD": postgres_server.password,
        "TEAM_S3_KEY": s3_server.access_key,
        "TEAM_S3_SECRET": s3_server.secret_key,
        "SHIPYARD_CACHE_DIR": str(tmp_path / "cache"),
    }
    secrets = [postgres_server.password, s3_server.secret_key]
    try:
        res = shipyard_proc("run", "--output", "json", cwd=proj, env=env)
        assert res.code == 0, res.err
        assert res.json()["status"] == "succeeded" and res.json()["endpoint"]["smoke_test"] == "passed"
        shown = shipyard_proc("workspace", "show", "--output", "json", cwd=proj, env=env)
        assert shown.json()["database_uri"] == bare.replace("shipyard@", "shipyard:***@")
        assert not any(s in res.out + res.err + shown.out + shown.err for s in secrets)
        assert scan_for_values(proj, secrets, isolated=True) == []
        assert scan_for_values(tmp_path / "cache", secrets) == []
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        for run in client.search_runs([e.experiment_id for e in client.search_experiments()]):
            values = [*run.data.params.values(), *run.data.tags.values(), run.info.artifact_uri]
            assert not any(s in v for v in values for s in secrets)
        stored = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
        assert any(k.startswith("ml/bundles/diabetes-ridge/") for k in stored)
        assert any(k.startswith("ml/mlflow/") for k in stored)
    finally:
        shipyard_proc("endpoints", "delete", "dev", cwd=proj, env=env)
