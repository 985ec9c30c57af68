"""Batch scoring on a real local Ray cluster (2 CPUs, Ray Data actors), against local processes.

Every input row is distinct, so a prediction in the wrong place or a lost/duplicated row shows.
The cluster is the session's (tests/ray_support.py), started as `shipyard compute create` does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bundles import SCORE_PY, make_bundle
from deploy_support import make_ws
from typer.testing import CliRunner

from shipyard.batch import BatchFailed, batch_score
from shipyard.batch.backends.ray import RayData
from shipyard.batch.records import get_job, list_jobs
from shipyard.cli.main import app
from shipyard.errors import ShipyardError

COLUMNS = [f"f{i}" for i in range(10)]
FAILING_SCORE_PY = SCORE_PY.replace(
    "    data = np.array(",
    "    if any(r[0] == 999.0 for r in json.loads(raw_data)['data']):\n"
    "        raise ValueError('marker row found')\n"
    "    data = np.array(",
)


def _frame(n: int, seed: int) -> pd.DataFrame:
    return pd.DataFrame(np.random.default_rng(seed).normal(size=(n, 10)), columns=COLUMNS)


def _predict(model, x: np.ndarray, rows: int) -> list[float]:
    """model.predict on the job's own mini-batches (BLAS results depend on the batch size)."""
    return [
        p
        for i in range(0, len(x), rows)
        for p in model.predict(np.ascontiguousarray(x[i : i + rows])).tolist()
    ]


def test_ray_keeps_order_and_equals_local_processes(tmp_path, ray_cluster):  # noqa: F811
    bundle_dir, model = make_bundle(tmp_path / "bundle")
    frame = _frame(3001, seed=11)
    source = tmp_path / "in.parquet"
    frame.to_parquet(source, index=False)
    ws = make_ws(tmp_path / "ws")
    backend = RayData(ray_cluster.gcs_address, 2)
    on_ray = batch_score(ws, bundle_dir, source, tmp_path / "ray", mini_batch_rows=250, backend=backend)
    local = batch_score(None, bundle_dir, source, tmp_path / "local", mini_batch_rows=250, workers=2)

    ours, theirs = pd.read_parquet(on_ray.output), pd.read_parquet(local.output)
    pd.testing.assert_frame_equal(ours[COLUMNS], frame)
    assert ours["prediction"].tolist() == theirs["prediction"].tolist()  # the same mini-batches, bit for bit
    assert ours["prediction"].tolist() == _predict(model, frame.to_numpy(), 250)
    assert (on_ray.backend, on_ray.workers, on_ray.mini_batches, on_ray.rows_scored) == ("ray", 2, 13, 3001)
    summary = json.loads(Path(on_ray.summary_path).read_text())
    assert summary["job_id"] == on_ray.job_id and summary["backend"] == "ray"
    job = get_job(ws, on_ray.job_id[:8])
    assert (job["status"], job["rows"], job["rows_scored"], job["failed_batches"]) == (
        "succeeded",
        3001,
        3001,
        0,
    )
    assert job["output"] == on_ray.output and job["finished_at"] is not None


def test_ray_key_mode_csv_writes_every_row_once(tmp_path, ray_cluster):  # noqa: F811
    bundle_dir, model = make_bundle(tmp_path / "bundle")
    frame = _frame(1200, seed=12)
    # Ids that grow long: later mini-batches are several times the first one's size, so Ray cuts
    # their blocks (its target block size follows the first) and the pieces must come together.
    frame.insert(0, "id", [f"row-{i}-" + "x" * (i // 4) for i in range(1200)])
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    result = batch_score(
        None, bundle_dir, source, tmp_path / "o" / "scores.csv", mini_batch_rows=100, key="id",
        backend=RayData(ray_cluster.gcs_address, 2),
    )  # fmt: skip
    out = pd.read_csv(result.output)
    assert list(out.columns) == ["id", "prediction"] and len(out) == 1200
    assert sorted(out["id"]) == sorted(frame["id"])
    expected = dict(zip(frame["id"], model.predict(pd.read_csv(source)[COLUMNS].to_numpy()), strict=True))
    for row_id, prediction in zip(out["id"], out["prediction"], strict=True):
        assert prediction == pytest.approx(expected[row_id], rel=1e-12)
    assert result.keep_order is False and result.job_id is None  # no workspace: no record


def test_ray_failed_mini_batches_under_and_over_the_threshold(tmp_path, ray_cluster):  # noqa: F811
    bundle_dir, model = make_bundle(tmp_path / "bundle", FAILING_SCORE_PY)
    frame = _frame(1000, seed=13)
    frame.loc[[120, 470], "f0"] = 999.0  # mini-batches 1 (rows 100-199) and 4 (rows 400-499)
    source = tmp_path / "in.parquet"
    frame.to_parquet(source, index=False)
    ws = make_ws(tmp_path / "ws")
    result = batch_score(
        ws, bundle_dir, source, tmp_path / "out", mini_batch_rows=100, error_threshold=2,
        backend=RayData(ray_cluster.gcs_address, 2),
    )  # fmt: skip
    assert [(f.index, f.first_row, f.end_row) for f in result.failed] == [(1, 100, 200), (4, 400, 500)]
    assert all("marker row found" in f.error for f in result.failed)
    kept = frame.drop(index=range(100, 200)).drop(index=range(400, 500)).reset_index(drop=True)
    out = pd.read_parquet(result.output)
    pd.testing.assert_frame_equal(out[COLUMNS], kept)
    assert out["prediction"].tolist() == _predict(model, kept.to_numpy(), 100)
    job = get_job(ws, result.job_id)
    assert (job["status"], job["rows_scored"], job["failed_batches"]) == ("succeeded", 800, 2)

    with pytest.raises(BatchFailed, match=r"over the threshold of 1.*marker row found") as info:
        batch_score(
            ws, bundle_dir, source, tmp_path / "out2", mini_batch_rows=100, error_threshold=1,
            backend=RayData(ray_cluster.gcs_address, 2),
        )  # fmt: skip
    assert not list((tmp_path / "out2").glob("*.parquet"))
    failed = get_job(ws, info.value.result.job_id)
    assert failed["status"] == "failed" and failed["failed_batches"] == 2 and failed["output"] is None


def test_ray_bundle_that_does_not_load_stops_the_job(tmp_path, ray_cluster):  # noqa: F811
    bundle_dir, _ = make_bundle(
        tmp_path / "bundle", SCORE_PY.replace("model = joblib", "raise RuntimeError('no model'); m = joblib")
    )
    source = tmp_path / "in.csv"
    _frame(300, seed=14).to_csv(source, index=False)
    ws = make_ws(tmp_path / "ws")
    with pytest.raises(ShipyardError, match="cannot load the bundle .* in a Ray batch actor: .*no model"):
        batch_score(
            ws, bundle_dir, source, tmp_path / "out", mini_batch_rows=100,
            backend=RayData(ray_cluster.gcs_address, 1),
        )  # fmt: skip
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    [job] = list_jobs(ws)
    assert job["status"] == "failed" and "no model" in job["summary"]["error"]


def test_ray_actor_that_dies_fails_the_job_instead_of_retrying_forever(tmp_path, ray_cluster):  # noqa: F811
    crashing = SCORE_PY.replace(
        "    data = np.array(",
        "    if any(r[0] == 999.0 for r in json.loads(raw_data)['data']): os._exit(3)\n    data = np.array(",
    )
    bundle_dir, _ = make_bundle(tmp_path / "bundle", crashing)
    frame = _frame(400, seed=16)
    frame.loc[250, "f0"] = 999.0
    source = tmp_path / "in.parquet"
    frame.to_parquet(source, index=False)
    with pytest.raises(ShipyardError, match="the Ray cluster failed the batch job: .*fewer --workers"):
        batch_score(
            None, bundle_dir, source, tmp_path / "out", mini_batch_rows=100, error_threshold=5,
            backend=RayData(ray_cluster.gcs_address, 2),
        )  # fmt: skip
    assert not list((tmp_path / "out").glob("*.parquet"))


def test_cli_compute_scores_on_the_cluster_and_records_it(tmp_path, ray_cluster, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)  # no shipyard.yaml: the cluster is found in the workspace's records
    bundle_dir, model = make_bundle(tmp_path / "bundle")
    x = np.random.default_rng(15).normal(size=(500, 10))
    pd.DataFrame(x, columns=COLUMNS).to_parquet(tmp_path / "in.parquet", index=False)
    workspace = ["--workspace", str(ray_cluster.ws.root)]
    args = ["batch-score", str(bundle_dir), str(tmp_path / "in.parquet"), "--output", str(tmp_path / "out")]
    args += ["--compute", ray_cluster.name, "--mini-batch-rows", "100", "--output-json", *workspace]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["backend"], summary["compute"], summary["workers"]) == ("ray", ray_cluster.name, 2)
    assert summary["rows_scored"] == 500
    np.testing.assert_allclose(pd.read_parquet(summary["output"])["prediction"], model.predict(x), rtol=1e-12)

    listed = CliRunner().invoke(app, ["batch-jobs", "list", "-o", "json", *workspace])
    assert listed.exit_code == 0, listed.output
    mine = [j for j in json.loads(listed.stdout) if j["id"] == summary["job_id"]]
    assert mine and mine[0]["compute"] == ray_cluster.name and mine[0]["status"] == "succeeded"
    shown = CliRunner().invoke(app, ["batch-jobs", "show", summary["job_id"][:12], *workspace])
    assert shown.exit_code == 0, shown.output
    assert f"compute: {ray_cluster.name}" in shown.stdout and "rows_scored: 500" in shown.stdout
