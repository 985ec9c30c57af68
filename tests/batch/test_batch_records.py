"""Batch jobs recorded in a real workspace store: the row follows the job (running → succeeded or
failed, with its figures), the summary file names the row, and `shipyard batch-jobs` shows them."""

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
from shipyard.batch.records import get_job, list_jobs, start_job
from shipyard.cli import common
from shipyard.cli.main import app
from shipyard.errors import NotFoundError, ShipyardError, UsageError
from shipyard.store import utcnow
from shipyard.store.models import BatchJobRow

FAILING_SCORE_PY = SCORE_PY.replace(
    "    data = np.array(",
    "    if any(r[0] == 999.0 for r in json.loads(raw_data)['data']):\n"
    "        raise ValueError('marker row found')\n"
    "    data = np.array(",
)


def _input(tmp_path: Path, rows: int, markers: list[int] = ()) -> Path:
    frame = pd.DataFrame(
        np.random.default_rng(3).normal(size=(rows, 10)), columns=[f"f{i}" for i in range(10)]
    )
    frame.loc[list(markers), "f0"] = 999.0
    path = tmp_path / "in.parquet"
    frame.to_parquet(path, index=False)
    return path


def test_jobs_are_recorded_as_they_end(tmp_path):
    ws = make_ws(tmp_path / "ws")
    bundle_dir, _ = make_bundle(tmp_path / "bundle", FAILING_SCORE_PY)
    source = _input(tmp_path, 40, markers=[15])  # mini-batch 1 of 4 fails
    ok = batch_score(ws, bundle_dir, source, tmp_path / "a", mini_batch_rows=10, workers=1, error_threshold=1)
    with pytest.raises(BatchFailed) as over:
        batch_score(ws, bundle_dir, source, tmp_path / "b", mini_batch_rows=10, workers=1, compute="nightly")

    assert json.loads(Path(ok.summary_path).read_text())["job_id"] == ok.job_id
    job = get_job(ws, ok.job_id[:6])
    assert (job["status"], job["backend"], job["compute"]) == ("succeeded", "local", None)
    assert (job["rows"], job["rows_scored"], job["failed_batches"]) == (40, 30, 1)
    assert job["output"] == ok.output and job["duration_s"] == ok.duration_s
    assert (job["model_name"], job["model_version"], job["input"]) == ("diabetes-ridge", "3", str(source))
    assert job["summary"]["failed"][0]["first_row"] == 10 and job["finished_at"] >= job["created_at"]
    failed = get_job(ws, over.value.result.job_id)
    assert (failed["status"], failed["compute"], failed["output"], failed["failed_batches"]) == (
        "failed", "nightly", None, 1
    )  # fmt: skip
    assert [j["id"] for j in list_jobs(ws)] == [failed["id"], job["id"]]  # newest first


def test_a_job_stopped_by_an_error_is_recorded_failed_with_it(tmp_path):
    ws = make_ws(tmp_path / "ws")
    bundle_dir, _ = make_bundle(
        tmp_path / "bundle", SCORE_PY.replace("model = joblib", "raise RuntimeError('no model'); m = joblib")
    )
    with pytest.raises(ShipyardError, match="cannot load the bundle"):
        batch_score(ws, bundle_dir, _input(tmp_path, 20), tmp_path / "o", mini_batch_rows=10, workers=1)
    [job] = list_jobs(ws)
    assert job["status"] == "failed" and job["finished_at"] is not None
    assert "no model" in job["summary"]["error"] and job["rows_scored"] == 0


def test_ids_by_prefix_and_what_is_not_there(tmp_path):
    ws = make_ws(tmp_path / "ws")
    bundle_dir, _ = make_bundle(tmp_path / "bundle")
    result = batch_score(ws, bundle_dir, _input(tmp_path, 5), tmp_path / "o", workers=1)
    # A job still running (its process was killed, say) keeps its start and no figures.
    from shipyard.batch.result import BatchResult

    started = start_job(
        ws, BatchResult("x", None, None, "b", "in.csv", "", None, "s.json", "ray", 2, 10), "c1"
    )
    running = get_job(ws, started)
    assert (running["status"], running["compute"], running["rows"], running["finished_at"]) == (
        "running", "c1", None, None
    )  # fmt: skip
    with pytest.raises(NotFoundError, match="no batch job 'abc'"):
        get_job(ws, "abc")
    with pytest.raises(NotFoundError, match="batch-jobs list"):
        get_job(ws, "ffffffffffff")
    assert get_job(ws, result.job_id)["status"] == "succeeded"
    with ws.store.session() as s:  # two ids that share their first 8 characters
        for suffix in ("1", "2"):
            s.add(BatchJobRow(id="abcdef01" + suffix * 24, status="running", backend="local", input="x",
                              summary={}, created_at=utcnow()))  # fmt: skip
    with pytest.raises(UsageError, match="'abcdef01' is ambiguous"):
        get_job(ws, "abcdef01")
    assert get_job(ws, "abcdef012")["id"] == "abcdef01" + "2" * 24


def test_cli_batch_jobs_list_and_show(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ws_dir = tmp_path / "ws"
    bundle_dir, _ = make_bundle(tmp_path / "bundle")
    source = _input(tmp_path, 12)
    run = ["batch-score", str(bundle_dir), str(source), "--output", str(tmp_path / "o"), "--workers", "1"]
    scored = CliRunner().invoke(
        app, [*run, "--mini-batch-rows", "5", "--output-json", "--workspace", str(ws_dir)]
    )
    assert scored.exit_code == 0, scored.output
    job_id = json.loads(scored.stdout)["job_id"]

    listed = CliRunner().invoke(app, ["batch-jobs", "list", "-o", "json", "--workspace", str(ws_dir)])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert (row["id"], row["status"], row["rows_scored"], row["backend"]) == (
        job_id,
        "succeeded",
        12,
        "local",
    )
    monkeypatch.setattr(common.console, "width", 160)  # CliRunner's 80 columns squeeze the table's cells
    table = CliRunner().invoke(app, ["batch-jobs", "list", "--workspace", str(ws_dir)])
    assert job_id[:12] in table.stdout and "12/12" in table.stdout
    shown = CliRunner().invoke(app, ["batch-jobs", "show", job_id[:12], "--workspace", str(ws_dir)])
    assert shown.exit_code == 0, shown.output
    assert f"id: {job_id}" in shown.stdout and "status: succeeded" in shown.stdout
    missing = CliRunner().invoke(app, ["batch-jobs", "show", "0000000", "--workspace", str(ws_dir)])
    assert isinstance(missing.exception, NotFoundError)
