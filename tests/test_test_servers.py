"""The real-server fixtures are real: PostgreSQL checks passwords and gives separate databases, the
S3 server stores objects and checks signatures, and MLflow tracks into the one and keeps its
artifacts in the other through the fixtures' environment variables alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from pg_support import pg_uri, postgres_server  # noqa: F401
from s3_support import s3_bucket, s3_server  # noqa: F401

pytestmark = pytest.mark.integration


def test_postgres_accepts_the_password_and_refuses_a_wrong_one(postgres_server, pg_uri):
    import psycopg
    import sqlalchemy as sa

    dbname = pg_uri.rsplit("/", 1)[1]
    assert postgres_server.psql(dbname, "SELECT current_user, current_database()") == [("shipyard", dbname)]
    engine = sa.create_engine(pg_uri)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW server_version")).scalar().startswith(("1", "2"))
    finally:
        engine.dispose()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host=postgres_server.host,
            port=postgres_server.port,
            user=postgres_server.user,
            password=postgres_server.password + "x",
            dbname=dbname,
            connect_timeout=10,
        )


def test_create_database_gives_separate_databases(postgres_server):
    first, second = postgres_server.create_database(), postgres_server.create_database()
    assert first != second
    a, b = first.rsplit("/", 1)[1], second.rsplit("/", 1)[1]
    postgres_server.psql(a, "CREATE TABLE t (x int)")
    postgres_server.psql(a, "INSERT INTO t VALUES (%s)", (42,))
    assert postgres_server.psql(a, "SELECT x FROM t") == [(42,)]
    assert postgres_server.psql(b, "SELECT to_regclass('public.t')") == [(None,)]
    named = postgres_server.create_database("shipyard_named_db")
    assert named == postgres_server.uri("shipyard_named_db")
    for name in (a, b, "shipyard_named_db"):
        postgres_server.drop_database(name)


def test_s3_put_get_round_trip(s3_server, s3_bucket):
    import boto3

    bucket = s3_bucket.removeprefix("s3://")
    s3_server.client().put_object(Bucket=bucket, Key="dir/hello.txt", Body=b"hello s3")
    # A client configured by the environment alone (AWS_ENDPOINT_URL_S3 and the keys) reads it back.
    env_client = boto3.client("s3")
    assert env_client.get_object(Bucket=bucket, Key="dir/hello.txt")["Body"].read() == b"hello s3"
    listed = env_client.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/hello.txt"]


def test_s3_refuses_a_wrong_secret_and_an_unknown_key(s3_server, s3_bucket):
    from botocore.exceptions import ClientError

    bucket = s3_bucket.removeprefix("s3://")
    for client in (
        s3_server.client(aws_secret_access_key=s3_server.secret_key + "x"),
        s3_server.client(aws_access_key_id="UNKNOWNKEY", aws_secret_access_key="whatever"),
    ):
        with pytest.raises(ClientError) as refused:
            client.list_objects_v2(Bucket=bucket)
        error = refused.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert error["Error"]["Code"] in {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"}
        with pytest.raises(ClientError):
            client.put_object(Bucket=bucket, Key="nope", Body=b"x")
    assert s3_server.client().list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_mlflow_tracks_in_postgres_and_keeps_artifacts_in_s3(
    s3_server, s3_bucket, pg_uri, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import mlflow
    from mlflow import MlflowClient

    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI: setenv first so that teardown undoes it.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(pg_uri)
    try:
        client = MlflowClient()
        experiment_id = client.create_experiment("s3-artifacts", artifact_location=f"{s3_bucket}/mlflow")
        source = tmp_path / "hello.txt"
        source.write_text("hello from mlflow\n")
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_param("store", "postgres")
            mlflow.log_artifact(str(source), artifact_path="notes")
        run_id = run.info.run_id
        assert run.info.artifact_uri == f"{s3_bucket}/mlflow/{run_id}/artifacts"

        got = client.get_run(run_id)
        assert got.data.params == {"store": "postgres"} and got.info.status == "FINISHED"
        bucket = s3_bucket.removeprefix("s3://")
        keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
        assert keys == [f"mlflow/{run_id}/artifacts/notes/hello.txt"]
        downloaded = client.download_artifacts(run_id, "notes/hello.txt", str(tmp_path / "back"))
        assert Path(downloaded).read_text() == "hello from mlflow\n"
    finally:
        mlflow.set_tracking_uri(None)
