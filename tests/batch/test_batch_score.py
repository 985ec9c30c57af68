"""Batch scoring with real bundles, real worker processes and real files.

Every input row is distinct, so a prediction in the wrong place or a lost/duplicated row shows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bundles import SCORE_PY, make_bundle

from shipyard.batch import BatchFailed, batch_score, parse_threshold
from shipyard.data.hashing import file_sha256
from shipyard.errors import NotFoundError, ShipyardError, UsageError

COLUMNS = [f"f{i}" for i in range(10)]
MARKER = 999.0

# score.py that refuses any mini-batch holding the marker value in its first column.
FAILING_SCORE_PY = SCORE_PY.replace(
    "    data = np.array(",
    "    if any(r[0] == 999.0 for r in json.loads(raw_data)['data']):\n"
    "        raise ValueError('marker row found')\n"
    "    data = np.array(",
)


def _predict(model, x: np.ndarray, rows: int) -> list[float]:
    """model.predict on the same mini-batches the job scores (BLAS results vary in the last bit
    with the batch size, so the whole file at once would not be the same computation)."""
    return [
        p
        for i in range(0, len(x), rows)
        for p in model.predict(np.ascontiguousarray(x[i : i + rows])).tolist()
    ]


def _frame(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, 10)), columns=COLUMNS)


@pytest.fixture
def bundle(tmp_path):
    return make_bundle(tmp_path / "bundle")


def test_parquet_keeps_order_and_predicts_exactly(tmp_path, bundle):
    bundle_dir, model = bundle
    frame = _frame(103)
    source = tmp_path / "in.parquet"
    frame.to_parquet(source, index=False)
    result = batch_score(None, bundle_dir, source, tmp_path / "out", mini_batch_rows=7, workers=2)

    out = pd.read_parquet(result.output)
    assert Path(result.output).parent == tmp_path / "out"
    assert Path(result.output).name.startswith("predictions-")
    assert list(out.columns) == [*COLUMNS, "prediction"]
    pd.testing.assert_frame_equal(out[COLUMNS], frame)
    assert out["prediction"].tolist() == _predict(model, frame.to_numpy(), 7)
    summary = json.loads(Path(result.summary_path).read_text())
    assert summary["status"] == "succeeded"
    assert (summary["rows"], summary["rows_scored"], summary["mini_batches"]) == (103, 103, 15)
    assert summary["failed_mini_batches"] == 0 and summary["failed"] == []
    assert (summary["model_name"], summary["model_version"]) == ("diabetes-ridge", "3")
    assert summary["input_sha256"] == file_sha256(source)
    assert summary["workers"] == 2 and summary["rows_per_s"] > 0
    assert not list((tmp_path / "out").glob(".*partial"))


def test_csv_in_csv_out_and_key_mode(tmp_path, bundle):
    bundle_dir, model = bundle
    frame = _frame(50, seed=2)
    frame.insert(0, "id", [f"row-{i}" for i in range(50)])
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    result = batch_score(
        None, bundle_dir, source, tmp_path / "o" / "scores.csv", mini_batch_rows=4, workers=2, key="id"
    )

    assert Path(result.output).name.startswith("scores-") and result.output.endswith(".csv")
    assert result.summary_path == result.output[: -len(".csv")] + ".json"
    out = pd.read_csv(result.output)
    assert list(out.columns) == ["id", "prediction"]
    assert sorted(out["id"]) == sorted(frame["id"])  # every row exactly once
    expected = dict(zip(frame["id"], model.predict(pd.read_csv(source)[COLUMNS].to_numpy()), strict=True))
    for row_id, prediction in zip(out["id"], out["prediction"], strict=True):
        assert prediction == pytest.approx(expected[row_id], rel=1e-12)
    assert result.keep_order is False and result.rows_scored == 50


def test_failed_batches_under_threshold_are_reported_and_rest_written(tmp_path):
    bundle_dir, model = make_bundle(tmp_path / "bundle", FAILING_SCORE_PY)
    frame = _frame(60, seed=3)
    frame.loc[[12, 47], "f0"] = MARKER  # mini-batches 1 (rows 10-19) and 4 (rows 40-49)
    source = tmp_path / "in.parquet"
    frame.to_parquet(source, index=False)
    result = batch_score(
        None, bundle_dir, source, tmp_path / "out", mini_batch_rows=10, workers=2, error_threshold=2
    )

    assert [(f.index, f.first_row, f.end_row) for f in result.failed] == [(1, 10, 20), (4, 40, 50)]
    assert all("marker row found" in f.error for f in result.failed)
    kept = frame.drop(index=range(10, 20)).drop(index=range(40, 50)).reset_index(drop=True)
    out = pd.read_parquet(result.output)
    pd.testing.assert_frame_equal(out[COLUMNS], kept)
    assert out["prediction"].tolist() == _predict(model, kept.to_numpy(), 10)
    summary = json.loads(Path(result.summary_path).read_text())
    assert summary["failed_mini_batches"] == 2 and summary["rows_scored"] == 40
    assert summary["failed"][1]["first_row"] == 40


def test_over_threshold_fails_and_writes_no_predictions(tmp_path):
    bundle_dir, _ = make_bundle(tmp_path / "bundle", FAILING_SCORE_PY)
    frame = _frame(60, seed=4)
    frame.loc[[5, 25, 55], "f0"] = MARKER  # 3 of 6 mini-batches = 50 %
    source = tmp_path / "in.parquet"
    frame.to_parquet(source, index=False)
    with pytest.raises(BatchFailed) as info:
        batch_score(
            None, bundle_dir, source, tmp_path / "out", mini_batch_rows=10, workers=2, error_threshold="40%"
        )
    message = str(info.value)
    assert "over the threshold of 40%" in message and "marker row found" in message
    assert "rows 0-9" in message
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(files) == 1 and files[0].endswith(".json")  # the failed job's summary, nothing else
    summary = json.loads((tmp_path / "out" / files[0]).read_text())
    assert summary["status"] == "failed" and summary["output"] is None
    assert summary["failed_mini_batches"] == 3


def test_percent_threshold_allows_its_share(tmp_path):
    bundle_dir, _ = make_bundle(tmp_path / "bundle", FAILING_SCORE_PY)
    frame = _frame(60, seed=5)
    frame.loc[[5, 25, 55], "f0"] = MARKER
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    result = batch_score(
        None, bundle_dir, source, tmp_path / "out", mini_batch_rows=10, workers=1, error_threshold="50%"
    )
    assert [f.index for f in result.failed] == [0, 2, 5] and result.rows_scored == 30


def test_threshold_parsing():
    assert parse_threshold(3).count == 3 and parse_threshold("7%").percent == 7
    assert parse_threshold("10%").exceeded(2, 10) and not parse_threshold("10%").exceeded(1, 10)
    assert parse_threshold("0").exceeded(1, None) and not parse_threshold("0").exceeded(0, 5)
    for bad in ("-1", "x", "150%"):
        with pytest.raises(UsageError, match="--error-threshold"):
            parse_threshold(bad)


def test_bad_input_names_what_to_fix(tmp_path, bundle):
    bundle_dir, _ = bundle
    source = tmp_path / "in.csv"
    _frame(5).to_csv(source, index=False)
    with pytest.raises(UsageError, match=r"--key 'id'.*columns: f0, f1"):
        batch_score(None, bundle_dir, source, tmp_path / "out", key="id")
    with pytest.raises(NotFoundError, match="does not exist"):
        batch_score(None, bundle_dir, tmp_path / "missing.csv", tmp_path / "out")
    (tmp_path / "in.json").write_text("{}")
    with pytest.raises(UsageError, match="use .csv or .parquet"):
        batch_score(None, bundle_dir, tmp_path / "in.json", tmp_path / "out")
    with pytest.raises(NotFoundError, match="no manifest.json"):
        batch_score(None, tmp_path, source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bundle_that_does_not_load_stops_the_job(tmp_path):
    bundle_dir, _ = make_bundle(
        tmp_path / "bundle", SCORE_PY.replace("model = joblib", "raise RuntimeError('no model'); m = joblib")
    )
    source = tmp_path / "in.csv"
    _frame(30).to_csv(source, index=False)
    with pytest.raises(ShipyardError, match="cannot load the bundle.*no model"):
        batch_score(None, bundle_dir, source, tmp_path / "out", mini_batch_rows=10, workers=1)
    assert not list((tmp_path / "out").glob("*.csv")) and not list((tmp_path / "out").glob("*.parquet"))
