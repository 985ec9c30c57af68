"""`shipyard batch-score` with s3:// input and output against a real S3 server (SeaweedFS,
tests/s3_support.py): the diabetes example's rows are scored from the bucket into the bucket and
must equal a local run's predictions; the summary object is uploaded after the predictions; a
failed job uploads nothing; a missing input object is one line naming its URI; an unreachable
endpoint is named. The bucket is read back with a plain boto3 client, not Shipyard's store."""

from __future__ import annotations

import io
import json
import socket
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from bundles import SCORE_PY, make_bundle
from s3_support import s3_bucket, s3_server  # noqa: F401

from shipyard.batch.records import get_job, list_jobs
from shipyard.config.loader import resolve_workspace_settings
from shipyard.workspace import Workspace

pytestmark = pytest.mark.integration

REFUSING_SCORE_PY = SCORE_PY.replace(
    "    data = np.array(",
    "    raise ValueError('this model refuses every mini-batch')\n    data = np.array(",
)


@pytest.fixture
def setup(tmp_path, example_dir, s3_bucket, s3_server, monkeypatch):  # noqa: F811
    """(bundle folder, local features CSV, its frame, bucket name, boto3 client); the input is
    uploaded to s3://BUCKET/in/diabetes.csv; temporary folders go to tmp_path/tmp."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.chdir(tmp_path)
    bundle_dir, _ = make_bundle(tmp_path / "bundle")
    frame = pd.read_csv(example_dir / "data" / "diabetes.csv").drop(columns=["target"])
    assert frame.shape == (442, 10)
    local = tmp_path / "diabetes.csv"
    frame.to_csv(local, index=False)
    bucket = s3_bucket.removeprefix("s3://")
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="in/diabetes.csv", Body=local.read_bytes())
    return bundle_dir, local, frame, bucket, client


def keys(client, bucket: str, prefix: str = "") -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def score(cli, bundle_dir: Path, source: str, output: str, ws: Path, *extra: str):
    return cli(
        "batch-score", bundle_dir, source, "--output", output, "--mini-batch-rows", "50",
        "--workers", "2", "--output-json", "--workspace", ws, *extra,
    )  # fmt: skip


def test_s3_input_to_s3_output_equals_a_local_run(cli, setup, tmp_path):
    bundle_dir, local_csv, frame, bucket, client = setup
    ws = tmp_path / "ws"
    remote = score(cli, bundle_dir, f"s3://{bucket}/in/diabetes.csv", f"s3://{bucket}/out", ws)
    assert remote.code == 0, remote.err
    summary = remote.json()
    local = score(cli, bundle_dir, local_csv, tmp_path / "local-out", ws)
    assert local.code == 0, local.err
    local_summary = local.json()

    # What the job reports and records: the URIs, never a temporary path.
    out_key = summary["output"].removeprefix(f"s3://{bucket}/")
    assert out_key.startswith("out/predictions-") and out_key.endswith(".parquet")
    assert summary["summary_path"] == summary["output"].removesuffix(".parquet") + ".json"
    assert summary["input"] == f"s3://{bucket}/in/diabetes.csv"
    assert (summary["status"], summary["rows"], summary["rows_scored"]) == ("succeeded", 442, 442)
    assert summary["input_sha256"] == local_summary["input_sha256"]  # the same bytes were scored
    job = _job(ws, summary["job_id"])
    assert (job["status"], job["input"], job["output"]) == ("succeeded", summary["input"], summary["output"])
    assert job["summary"]["summary_path"] == summary["summary_path"]

    # In the bucket: exactly the predictions and the summary beside them.
    summary_key = out_key.removesuffix(".parquet") + ".json"
    assert keys(client, bucket, "out/") == sorted([out_key, summary_key])
    body = client.get_object(Bucket=bucket, Key=out_key)["Body"].read()
    ours = pd.read_parquet(io.BytesIO(body))
    theirs = pd.read_parquet(local_summary["output"])
    assert len(ours) == 442
    pd.testing.assert_frame_equal(ours[list(frame.columns)], frame)
    assert ours["prediction"].tolist() == theirs["prediction"].tolist()
    stored = json.loads(client.get_object(Bucket=bucket, Key=summary_key)["Body"].read())
    assert stored["output"] == summary["output"] and stored["input"] == summary["input"]
    assert stored["status"] == "succeeded" and stored["rows_scored"] == 442
    # The upload order: the summary was written after the predictions.
    heads = {k: client.head_object(Bucket=bucket, Key=k)["LastModified"] for k in (out_key, summary_key)}
    assert heads[out_key] <= heads[summary_key]
    assert list((tmp_path / "tmp").iterdir()) == []  # the temporary folders are gone


def test_local_input_to_an_s3_csv_name_and_s3_input_to_a_local_folder(cli, setup, tmp_path):
    bundle_dir, local_csv, frame, bucket, client = setup
    ws = tmp_path / "ws"
    up = score(cli, bundle_dir, local_csv, f"s3://{bucket}/team/scores.csv", ws)
    assert up.code == 0, up.err
    summary = up.json()
    key = summary["output"].removeprefix(f"s3://{bucket}/")
    assert key.startswith("team/scores-") and key.endswith(".csv")
    assert summary["input"] == str(local_csv)
    assert keys(client, bucket, "team/") == sorted([key, key.removesuffix(".csv") + ".json"])
    csv = pd.read_csv(io.BytesIO(client.get_object(Bucket=bucket, Key=key)["Body"].read()))

    down = score(cli, bundle_dir, f"s3://{bucket}/in/diabetes.csv", tmp_path / "down", ws)
    assert down.code == 0, down.err
    local = down.json()
    assert Path(local["output"]).parent == tmp_path / "down" and Path(local["summary_path"]).is_file()
    parquet = pd.read_parquet(local["output"])
    assert len(csv) == len(parquet) == 442
    pd.testing.assert_series_equal(csv["prediction"], parquet["prediction"], rtol=1e-12, check_dtype=False)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_failed_job_uploads_nothing(cli, setup, tmp_path):
    _, _, _, bucket, client = setup
    refusing, _ = make_bundle(tmp_path / "refusing", REFUSING_SCORE_PY)
    ws = tmp_path / "ws"
    result = score(cli, refusing, f"s3://{bucket}/in/diabetes.csv", f"s3://{bucket}/out", ws)
    assert result.code == 1
    assert "over the threshold of 0" in result.err and "refuses every mini-batch" in result.err
    assert "Summary: not uploaded (the job failed)" in result.err
    assert keys(client, bucket) == ["in/diabetes.csv"]  # nothing but the input
    (job,) = _jobs(ws)
    assert (job["status"], job["output"], job["input"]) == ("failed", None, f"s3://{bucket}/in/diabetes.csv")
    assert 1 <= job["summary"]["failed_mini_batches"] <= 9 and job["summary"]["summary_path"] is None
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_missing_input_object_is_one_line_naming_it(cli, setup, tmp_path):
    bundle_dir, _, _, bucket, client = setup
    missing = f"s3://{bucket}/in/nope.csv"
    result = score(cli, bundle_dir, missing, f"s3://{bucket}/out", tmp_path / "ws")
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert f"input {missing} does not exist" in lines[0] and "Traceback" not in result.err
    assert keys(client, bucket) == ["in/diabetes.csv"]


def test_an_unreachable_output_store_is_named_before_any_scoring(cli, setup, tmp_path, monkeypatch):
    bundle_dir, local_csv, _, bucket, _ = setup
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    result = score(cli, bundle_dir, local_csv, f"s3://{bucket}/out", tmp_path / "ws")
    assert result.code != 0
    assert f"127.0.0.1:{port}" in result.err and "could not reach" in result.err
    assert _jobs(tmp_path / "ws") == []  # it stopped before the job started


def _ws(root: Path) -> Workspace:
    return Workspace.get_or_create(resolve_workspace_settings(None, cli={"root": str(root)}))


def _job(root: Path, job_id: str) -> dict:
    ws = _ws(root)
    try:
        return get_job(ws, job_id)
    finally:
        ws.store.dispose()


def _jobs(root: Path) -> list[dict]:
    ws = _ws(root)
    try:
        return list_jobs(ws)
    finally:
        ws.store.dispose()
