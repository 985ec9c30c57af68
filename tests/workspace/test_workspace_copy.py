"""Moving in: `shipyard workspace copy` from an embedded workspace (SQLite + files) into a shared one
on a real PostgreSQL server and a real S3 server (SeaweedFS, checking signatures), and
`shipyard workspace check` against good and broken shared workspaces.

The source is the example pipeline run twice (alpha 1.0, then 0.1: two versions, production moved
to v2 with its history and gate decisions, a bundle per version) plus one plain MLflow run with a
metric history and an artifact. Runs stop after `package`, so no server is started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from pg_support import pg_uri, postgres_server  # noqa: F401
from s3_support import s3_bucket, s3_server  # noqa: F401

from shipyard.store.db import HEAD_REVISION

pytestmark = pytest.mark.integration

MODEL = "diabetes-ridge"
PREFIX = "team"
# A plain MLflow run in the source: a metric with a history (5 steps), a param and an artifact.
HISTORY_RUN = """
import sys
from mlflow import MlflowClient

client = MlflowClient(tracking_uri=sys.argv[1])
exp = client.get_experiment_by_name("diabetes")
run = client.create_run(exp.experiment_id, run_name="history")
for step in range(5):
    client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step, timestamp=1700000000000 + step)
client.log_param(run.info.run_id, "kind", "history")
client.log_text(run.info.run_id, "loss went down", "notes/readme.txt")
client.set_terminated(run.info.run_id)
print(run.info.run_id)
"""
LOAD_MODEL = """
import json, sys
import mlflow
import numpy as np

mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_registry_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(f"models:/{sys.argv[2]}@production")
print(json.dumps(model.predict(np.array(json.loads(sys.argv[3]), dtype=float)).tolist()))
"""
FETCH_BUNDLE = """
import json, sys
from pathlib import Path
from shipyard.config.models import WorkspaceSettings
from shipyard.packaging.bundle import get_bundle
from shipyard.workspace import Workspace

ws = Workspace(WorkspaceSettings(root=sys.argv[1], database_uri=sys.argv[2], artifact_uri=sys.argv[3]))
bundle = get_bundle(ws, sys.argv[4])
manifest = json.loads((Path(bundle.path) / "manifest.json").read_text())
print(json.dumps({"path": bundle.path, "manifest": manifest}))
"""


def _dbname(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


def _no_secrets(res, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in res.out and secret not in res.err, "a secret was printed"


@pytest.fixture(scope="module")
def source(tmp_path_factory, copy_project, shipyard_proc) -> Path:
    """The project with its embedded workspace: two pipeline runs and a run with a metric history."""
    proj = copy_project(tmp_path_factory.mktemp("copy-source") / "project")
    for alpha in ("1.0", "0.1"):
        res = shipyard_proc("run", "--until", "package", "--param", f"alpha={alpha}", "-o", "json", cwd=proj)
        assert res.code == 0, res.err
        assert res.json()["status"] == "succeeded"
    db = f"sqlite:///{proj / '.shipyard' / 'shipyard.db'}"
    out = subprocess.run(
        [sys.executable, "-c", HISTORY_RUN, db], capture_output=True, text=True, timeout=120, check=True
    )
    (proj / "history_run_id").write_text(out.stdout.strip().splitlines()[-1])
    return proj


@pytest.fixture(scope="module")
def team(source, postgres_server, s3_server, shipyard_proc, query):
    """A shared workspace the source was copied into once (the password passed in SHIPYARD_COPY_TO)."""
    db = postgres_server.create_database()
    artifacts = f"s3://{s3_server.create_bucket()}/{PREFIX}"
    env = {**s3_server.env(), "SHIPYARD_COPY_TO": db}
    res = shipyard_proc("workspace", "copy", "--artifacts-to", artifacts, "-o", "json", cwd=source, env=env)
    assert res.code == 0, res.err
    ws = source / ".shipyard"
    copied_runs = {r["run_uuid"] for r in query(ws, "select run_uuid from runs")}
    return {"db": db, "artifacts": artifacts, "first": res, "runs": copied_runs}


def _copy(shipyard_proc, s3_server, source: Path, db: str, artifacts: str, *extra: str):
    env = {**s3_server.env(), "SHIPYARD_COPY_TO": db}
    return shipyard_proc(
        "workspace", "copy", "--artifacts-to", artifacts, "-o", "json", *extra, cwd=source, env=env
    )


def _s3_keys(s3_server, artifacts: str) -> list[str]:
    bucket, _, prefix = artifacts.removeprefix("s3://").partition("/")
    pages = s3_server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def test_copy_keeps_ids_history_and_artifacts(
    source, team, postgres_server, s3_server, query, seed_payload, reference_model, tmp_path
):
    ws = source / ".shipyard"
    db, artifacts, first = team["db"], team["artifacts"], team["first"]
    pg = lambda sql, *args: postgres_server.psql(_dbname(db), sql, args or None)  # noqa: E731
    _no_secrets(first, postgres_server.password, s3_server.secret_key)
    report = first.json()
    assert report["verified"] is True
    assert report["dest"]["database"] == db.replace(postgres_server.password, "***")
    tables = report["tables"]
    assert tables["runs"] == {"source": 5, "dest": 5, "copied": 5}  # 2 pipeline + 2 train + history
    assert tables["model_versions"]["copied"] == 2 and tables["shipyard_gate_decisions"]["copied"] == 2
    assert tables["shipyard_alias_events"]["copied"] == 4 and tables["shipyard_bundles"]["copied"] == 2
    assert tables["experiments"] == {"source": 2, "dest": 2, "copied": 1}  # Default is each side's own
    assert "alembic_version" not in tables and "shipyard_alembic_version" not in tables
    # Progress per table went to stderr, the report alone to stdout.
    assert "metrics" in first.err and "artifacts" in first.err

    # The same runs, with the same metrics (whole history), params and tags.
    runs = team["runs"]
    compared = dict.fromkeys(("metrics", "params", "tags"), 0)
    assert {r[0] for r in pg("select run_uuid from runs")} >= runs
    for table, cols in (
        ("metrics", "key, value, timestamp, step"),
        ("params", "key, value"),
        ("tags", "key, value"),
    ):
        for run_id in runs:
            ours = sorted(
                tuple(r.values()) for r in query(ws, f"select {cols} from {table} where run_uuid = ?", run_id)
            )
            theirs = sorted(tuple(r) for r in pg(f"select {cols} from {table} where run_uuid = %s", run_id))
            assert theirs == ours, (table, run_id)
            compared[table] += len(ours)
    # metrics: 2 x (mse, r2, eval_rows) + 5 losses; params: 2 x 3 + 1
    assert compared["metrics"] == 11 and compared["params"] == 7
    history_run = (source / "history_run_id").read_text()

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=db, registry_uri=db)
    history = client.get_metric_history(history_run, "loss")
    assert [(m.step, m.value, m.timestamp) for m in history] == [
        (s, 1.0 / (s + 1), 1700000000000 + s) for s in range(5)
    ]
    assert client.get_run(history_run).data.params == {"kind": "history"}

    # Model versions with their runs, the aliases where the source has them, the experiment id.
    versions = {(str(v.version), v.run_id) for v in client.search_model_versions(f"name='{MODEL}'")}
    ours = {(str(r["version"]), r["run_id"]) for r in query(ws, "select version, run_id from model_versions")}
    assert versions == ours and len(versions) == 2
    assert str(client.get_model_version_by_alias(MODEL, "production").version) == "2"
    assert str(client.get_model_version_by_alias(MODEL, "staging").version) == "2"
    exp = client.get_experiment_by_name("diabetes")
    assert exp.experiment_id == "1" and exp.artifact_location == f"{artifacts}/mlflow/diabetes"
    assert (
        client.get_run(history_run).info.artifact_uri
        == f"{artifacts}/mlflow/diabetes/{history_run}/artifacts"
    )

    # Alias history and gate decisions: the same rows under the same ids.
    alias_cols = "id, model_name, alias, from_version, to_version, actor, reason, pipeline_run_id"
    ours = [
        tuple(r.values()) for r in query(ws, f"select {alias_cols} from shipyard_alias_events order by id")
    ]
    theirs = [tuple(r) for r in pg(f"select {alias_cols} from shipyard_alias_events order by id")]
    assert theirs[: len(ours)] == ours and [(r[2], r[3], r[4]) for r in ours] == [
        ("staging", None, "1"),
        ("production", None, "1"),
        ("staging", "1", "2"),
        ("production", "1", "2"),
    ]
    gate_cols = "id, candidate_run_id, verdict, champion_version, candidate_value, champion_value"
    ours = [
        tuple(r.values()) for r in query(ws, f"select {gate_cols} from shipyard_gate_decisions order by id")
    ]
    theirs = {r[0]: tuple(r) for r in pg(f"select {gate_cols} from shipyard_gate_decisions")}
    assert [theirs[r[0]] for r in ours[:2]] == ours[:2]
    assert [(r[2], r[3]) for r in ours[:2]] == [("passed", None), ("passed", "1")]

    # Every object under the source root is at the same key under the destination prefix.
    src_root = ws / "artifacts"
    src_keys = sorted(p.relative_to(src_root).as_posix() for p in src_root.rglob("*") if p.is_file())
    dest_keys = {k.removeprefix(f"{PREFIX}/") for k in _s3_keys(s3_server, artifacts)}
    assert src_keys and set(src_keys) <= dest_keys
    assert f"mlflow/diabetes/{history_run}/artifacts/notes/readme.txt" in dest_keys
    assert report["artifacts"]["source"] == len(src_keys) == report["artifacts"]["copied"]

    # The production model loads from the shared workspace alone and predicts as alpha=0.1 does.
    env = {**os.environ, **s3_server.env()}
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_MODEL, db, MODEL, json.dumps(seed_payload["data"])],
        capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    expected = reference_model(0.1)[1].predict(np.array(seed_payload["data"], dtype=float))
    assert np.allclose(json.loads(loaded.stdout.strip().splitlines()[-1]), expected)

    # Bundles: recorded as folders here, stored objects there (uri + content hash + marker), and a
    # machine with an empty cache fetches and verifies one.
    rows = pg("select id, uri, stored_hash, model_version from shipyard_bundles order by model_version")
    assert [r[3] for r in rows] == ["1", "2"]
    for _, uri, stored_hash, _ in rows:
        assert uri.startswith(f"{artifacts}/bundles/{MODEL}/") and len(stored_hash) == 64
    env["SHIPYARD_CACHE_DIR"] = str(tmp_path / "cache")
    fetched = subprocess.run(
        [sys.executable, "-c", FETCH_BUNDLE, str(tmp_path / "ws"), db, artifacts, rows[1][0]],
        capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    bundle = json.loads(fetched.stdout.strip().splitlines()[-1])
    assert bundle["path"].startswith(str(tmp_path / "cache"))
    assert bundle["manifest"]["model_version"] == "2" and bundle["manifest"]["run_id"] in runs


def test_copying_again_copies_nothing_and_still_verifies(
    source, team, postgres_server, s3_server, shipyard_proc
):
    # Once to take up whatever another test added to the source, then the run that must be empty;
    # this time the URI is on the command line (the variable is not needed).
    db, artifacts = team["db"], team["artifacts"]
    assert _copy(shipyard_proc, s3_server, source, db, artifacts).code == 0
    counts = postgres_server.psql(_dbname(db), "select count(*) from metrics")
    env = s3_server.env()
    again = shipyard_proc(
        "workspace", "copy", "--to", db, "--artifacts-to", artifacts, "-o", "json", cwd=source, env=env
    )
    assert again.code == 0, again.err
    _no_secrets(again, postgres_server.password, s3_server.secret_key)
    report = again.json()
    assert report["verified"] is True
    assert {name: t["copied"] for name, t in report["tables"].items() if t["copied"]} == {}
    assert report["tables"]["runs"]["source"] >= 5
    assert (
        report["artifacts"]["copied"] == 0
        and report["artifacts"]["skipped"] == report["artifacts"]["source"] > 0
    )
    assert postgres_server.psql(_dbname(db), "select count(*) from metrics") == counts
    # The text output is a table and a verdict, again without the password.
    text = shipyard_proc(
        "workspace", "copy", "--artifacts-to", artifacts, cwd=source, env={**env, "SHIPYARD_COPY_TO": db}
    )
    assert text.code == 0, text.err
    assert "verified" in text.out and "0 copied" in text.out
    _no_secrets(text, postgres_server.password)


def test_a_run_logged_afterwards_is_copied_by_the_next_copy(
    source, team, postgres_server, s3_server, shipyard_proc
):
    db, artifacts = team["db"], team["artifacts"]
    assert _copy(shipyard_proc, s3_server, source, db, artifacts).code == 0  # up to date first
    run = shipyard_proc("run", "--until", "package", "--param", "alpha=5.0", "-o", "json", cwd=source)
    assert run.code == 0, run.err
    summary = run.json()
    assert summary["status"] == "rejected"  # worse than production: a decision, no version
    train_run = summary["run"]["run_id"]

    res = _copy(shipyard_proc, s3_server, source, db, artifacts)
    assert res.code == 0, res.err
    report = res.json()
    copied = {name: t["copied"] for name, t in report["tables"].items() if t["copied"]}
    assert copied["runs"] == 2  # the pipeline's parent run and its train run
    assert copied["shipyard_pipeline_runs"] == 1 and copied["shipyard_gate_decisions"] == 1
    assert copied["metrics"] == 3 and copied["params"] == 3
    assert "model_versions" not in copied and "registered_model_aliases" not in copied
    # The new run's logged model: MLmodel, model.pkl, conda.yaml, python_env.yaml,
    # requirements.txt and the input example (input_example.json, serving_input_example.json).
    assert report["artifacts"]["copied"] == 7
    pg = lambda sql, *args: postgres_server.psql(_dbname(db), sql, args or None)  # noqa: E731
    assert pg(
        "select verdict, champion_version from shipyard_gate_decisions where candidate_run_id = %s", train_run
    ) == [("rejected", "2")]
    train_metrics = {r[0] for r in pg("select key from metrics where run_uuid = %s", train_run)}
    assert train_metrics == {"mse", "r2", "eval_rows"}
    # The logged model lives under the experiment's models/<model id>/ folder (MLflow 3).
    [(model_id,)] = pg("select value from tags where run_uuid = %s and key = 'shipyard.model_id'", train_run)
    assert model_id.startswith("m-")
    keys = _s3_keys(s3_server, artifacts)
    assert any(k.endswith(f"/models/{model_id}/artifacts/model.pkl") for k in keys), sorted(keys)[:20]


def test_the_copied_workspace_serves_the_team(
    source, tmp_path, copy_project, postgres_server, s3_server, shipyard_proc, query
):
    """A fresh shared workspace after the copy: a teammate's checkout reuses every step, new ids
    follow the copied ones, and a later copy that would reuse an id taken there is refused."""
    db = postgres_server.create_database()
    artifacts = f"s3://{s3_server.create_bucket()}/{PREFIX}"
    assert _copy(shipyard_proc, s3_server, source, db, artifacts).code == 0
    teammate = copy_project(tmp_path / "teammate")
    env = {
        **s3_server.env(),
        "SHIPYARD_DATABASE_URI": db,
        "SHIPYARD_ARTIFACT_URI": artifacts,
        "SHIPYARD_CACHE_DIR": str(tmp_path / "teammate-cache"),
    }
    rerun = shipyard_proc(
        "run", "--until", "package", "--param", "alpha=0.1", "-o", "json", cwd=teammate, env=env
    )
    assert rerun.code == 0, rerun.err
    summary = rerun.json()
    assert summary["cached_steps"] == ["data_check", "train", "evaluate", "register", "package"]
    assert summary["model"]["version"] == "2"
    # The sequences were moved past the copied ids: new rows get the next ones.
    pg = lambda sql, *args: postgres_server.psql(_dbname(db), sql, args or None)  # noqa: E731
    copied_steps = query(source / ".shipyard", "select max(id) as top from shipyard_step_runs")[0]["top"]
    new_steps = "select min(id), count(*) from shipyard_step_runs where pipeline_run_id = %s"
    assert pg(new_steps, summary["pipeline_run_id"]) == [(copied_steps + 1, 5)]
    from mlflow import MlflowClient

    assert MlflowClient(tracking_uri=db).create_experiment("after-copy") == "2"

    # The source goes on (a run the gate rejects) while the shared workspace was used: the new
    # step records' ids are taken there by the teammate's run, so the copy refuses, naming them.
    later = shipyard_proc("run", "--until", "package", "--param", "alpha=3.0", "-o", "json", cwd=source)
    assert later.code == 0, later.err
    before = pg("select count(*) from runs")
    refused = _copy(shipyard_proc, s3_server, source, db, artifacts)
    assert refused.code == 1
    assert "shipyard_step_runs row" in refused.err and "Nothing was copied" in refused.err
    assert "work in the shared workspace only" in refused.err
    assert pg("select count(*) from runs") == before
    _no_secrets(refused, postgres_server.password)


def test_a_conflicting_destination_is_refused_before_anything_is_written(
    source, postgres_server, s3_server, shipyard_proc
):
    from mlflow import MlflowClient

    db = postgres_server.create_database()
    bucket = s3_server.create_bucket()
    client = MlflowClient(tracking_uri=db, registry_uri=db)
    assert client.create_experiment("other-team") == "1"
    assert client.create_experiment("diabetes") == "2"  # the source's "diabetes" is experiment 1
    res = _copy(shipyard_proc, s3_server, source, db, f"s3://{bucket}/{PREFIX}")
    assert res.code == 1
    assert "experiment 'diabetes' has id 2 in the destination and id 1 in the source" in res.err
    assert "experiment id 1 is 'other-team' in the destination but 'diabetes' in the source" in res.err
    assert "Nothing was copied" in res.err and "Traceback" not in res.err
    assert "work in the shared workspace only" not in res.err
    assert db.replace(postgres_server.password, "***") in res.err
    _no_secrets(res, postgres_server.password)
    pg = lambda sql: postgres_server.psql(_dbname(db), sql)[0][0]  # noqa: E731
    for table in (
        "runs",
        "metrics",
        "registered_models",
        "shipyard_pipeline_runs",
        "shipyard_gate_decisions",
    ):
        assert pg(f"select count(*) from {table}") == 0, table
    assert pg("select count(*) from experiments") == 3  # Default and the two made here
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


# -- shipyard workspace check ----------------------------------------------------------------------
def _check(shipyard_proc, tmp_path: Path, db: str, artifacts: str, **env: str):
    env = {
        "SHIPYARD_WORKSPACE": str(tmp_path / "ws"),
        "SHIPYARD_DATABASE_URI": db,
        "SHIPYARD_ARTIFACT_URI": artifacts,
        **env,
    }
    res = shipyard_proc("workspace", "check", "-o", "json", cwd=tmp_path, env=env, timeout=120)
    return res, {c["check"]: c for c in res.json()}


def test_check_passes_on_a_good_shared_workspace(
    tmp_path, pg_uri, s3_bucket, postgres_server, s3_server, shipyard_proc
):
    res, checks = _check(shipyard_proc, tmp_path, pg_uri, f"{s3_bucket}/{PREFIX}")
    assert res.code == 0, res.out + res.err
    assert list(checks) == [
        "database", "database mode", "shipyard schema", "mlflow schema", "database write", "artifact store"
    ]  # fmt: skip
    assert all(c["ok"] for c in checks.values()), checks
    assert checks["database"]["detail"].startswith(
        f"connected to {pg_uri.replace(postgres_server.password, '***')}"
    )
    assert "PostgreSQL" in checks["database"]["detail"]
    assert checks["database mode"]["detail"].startswith("shared: a database server at 127.0.0.1:")
    assert checks["shipyard schema"]["detail"] == f"at revision {HEAD_REVISION} (current)"
    assert "write, read, list and delete work" in checks["artifact store"]["detail"]
    assert s3_server.endpoint_url in checks["artifact store"]["detail"]
    _no_secrets(res, postgres_server.password, s3_server.secret_key)
    # The probe object is gone again, and the text form is a table.
    bucket = s3_bucket.removeprefix("s3://")
    assert s3_server.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    env = {
        "SHIPYARD_WORKSPACE": str(tmp_path / "ws"),
        "SHIPYARD_DATABASE_URI": pg_uri,
        "SHIPYARD_ARTIFACT_URI": s3_bucket,
    }
    text = shipyard_proc("workspace", "check", cwd=tmp_path, env=env)
    assert text.code == 0 and "artifact store" in text.out and "FAILED" not in text.out


def test_check_names_a_wrong_password_without_showing_it(
    tmp_path, pg_uri, s3_bucket, postgres_server, shipyard_proc
):
    wrong = "wrong" + uuid.uuid4().hex
    res, checks = _check(shipyard_proc, tmp_path, pg_uri.replace(postgres_server.password, wrong), s3_bucket)
    assert res.code == 1
    detail = checks["database"]["detail"]
    assert not checks["database"]["ok"]
    assert (
        "password authentication failed" in detail
        and "check the user name and the password reference" in detail
    )
    assert "shipyard:***@127.0.0.1" in detail
    assert not checks["shipyard schema"]["ok"] and "cannot be reached" in checks["shipyard schema"]["detail"]
    assert checks["artifact store"]["ok"]  # the other store is checked all the same
    _no_secrets(res, wrong, postgres_server.password)
    assert "Traceback" not in res.err


def test_check_names_a_missing_bucket(tmp_path, pg_uri, s3_bucket, shipyard_proc):
    missing = f"missing-{uuid.uuid4().hex[:12]}"
    res, checks = _check(shipyard_proc, tmp_path, pg_uri, f"s3://{missing}/{PREFIX}")
    assert res.code == 1
    assert checks["database"]["ok"] and checks["database write"]["ok"]
    detail = checks["artifact store"]["detail"]
    assert not checks["artifact store"]["ok"]
    assert f"bucket '{missing}' does not exist" in detail and "create it" in detail


def test_check_names_a_wrong_s3_secret_without_showing_it(
    tmp_path, pg_uri, s3_bucket, s3_server, shipyard_proc
):
    wrong = "wrong" + uuid.uuid4().hex
    res, checks = _check(shipyard_proc, tmp_path, pg_uri, s3_bucket, AWS_SECRET_ACCESS_KEY=wrong)
    assert res.code == 1
    detail = checks["artifact store"]["detail"]
    assert not checks["artifact store"]["ok"] and checks["database"]["ok"]
    assert any(code in detail for code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"))
    assert "AWS_SECRET_ACCESS_KEY" in detail
    assert s3_server.endpoint_url in detail
    _no_secrets(res, wrong, s3_server.secret_key)


def test_check_on_the_embedded_workspace_says_local(tmp_path, shipyard_proc):
    env = {"SHIPYARD_WORKSPACE": str(tmp_path / "ws")}
    res = shipyard_proc("workspace", "check", "-o", "json", cwd=tmp_path, env=env)
    assert res.code == 0, res.out + res.err
    checks = {c["check"]: c for c in res.json()}
    assert all(c["ok"] for c in checks.values()), checks
    assert checks["database mode"]["detail"].startswith(
        f"local: SQLite file {tmp_path / 'ws' / 'shipyard.db'}"
    )
    assert checks["database write"]["detail"] == "a row inserted into shipyard_endpoint_keys and rolled back"
    assert not (tmp_path / "ws" / "artifacts" / ".shipyard-check").exists()
