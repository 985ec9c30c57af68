"""DataCapture: real files, real writer thread; counts and contents, never timings."""

from __future__ import annotations

import os
import random
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson
import pytest

from shipyard.serving.capture.collector import DataCapture


def read_lines(folder: Path) -> list[dict]:
    records = []
    for path in sorted(folder.glob("capture-*.jsonl")):
        records.extend(orjson.loads(line) for line in path.read_bytes().splitlines())
    return records


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def test_every_capture_becomes_one_json_line(tmp_path: Path) -> None:
    cap = DataCapture(tmp_path / "cap", sample_rate=1.0, max_file_mb=64)
    n = 250
    for i in range(n):
        cap.capture(f"req-{i}", {"data": [[i, i + 0.5]]}, {"result": [i * 2.0]})
    assert cap.close(timeout=10)
    assert (cap.captured, cap.dropped, cap.skipped) == (n, 0, 0)

    records = read_lines(tmp_path / "cap")
    assert [r["request_id"] for r in records] == [f"req-{i}" for i in range(n)]
    for i, r in enumerate(records):
        assert r["inputs"] == {"data": [[i, i + 0.5]]}
        assert r["outputs"] == {"result": [i * 2.0]}
        stamp = datetime.fromisoformat(r["timestamp"])
        assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0
    assert set(r.keys()) == {"timestamp", "request_id", "inputs", "outputs"}
    # One file, named with the UTC date-time and the pid.
    (path,) = cap.files
    assert path.parent == tmp_path / "cap"
    assert path.name.startswith("capture-") and path.name.endswith(f"-{os.getpid()}.jsonl")


def test_numpy_and_bytes_are_written_as_json(tmp_path: Path) -> None:
    cap = DataCapture(tmp_path, sample_rate=1.0, max_file_mb=1)
    matrix = np.arange(6, dtype=np.float64).reshape(2, 3)
    cap.capture("np", matrix, np.array([np.float32(1.5), np.float32(2.5)]))
    cap.capture("strided", matrix[:, ::2], {"n": np.int64(7), "f": np.float64(0.25)})
    cap.capture("raw", b'{"data": [[1, 2]]}', [1])
    assert cap.close()
    by_id = {r["request_id"]: r for r in read_lines(tmp_path)}
    assert by_id["np"]["inputs"] == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert by_id["np"]["outputs"] == [1.5, 2.5]
    assert by_id["strided"]["inputs"] == [[0.0, 2.0], [3.0, 5.0]]
    assert by_id["strided"]["outputs"] == {"n": 7, "f": 0.25}
    assert by_id["raw"]["inputs"] == '{"data": [[1, 2]]}'
    assert cap.captured == 3 and cap.dropped == 0


def test_rotation_past_max_file_mb(tmp_path: Path) -> None:
    # ~1 KB per record, files of ~4 KB: 40 records need about 10 files.
    cap = DataCapture(tmp_path, sample_rate=1.0, max_file_mb=4 / 1024)
    payload = "x" * 1000
    for i in range(40):
        cap.capture(f"r{i}", payload, i)
    assert cap.close()
    files = sorted(tmp_path.glob("capture-*.jsonl"))
    assert len(files) >= 8
    assert len(set(files)) == len(cap.files) == len(files)
    # No file grows past the limit by more than one record, and nothing is lost or repeated.
    for path in files:
        assert path.stat().st_size < 4 * 1024 + 1200
    ids = sorted(int(r["request_id"][1:]) for r in read_lines(tmp_path))
    assert ids == list(range(40))


def test_sampling_keeps_about_the_sample_rate(tmp_path: Path) -> None:
    random.seed(1234)
    cap = DataCapture(tmp_path, sample_rate=0.1, max_file_mb=64)
    for i in range(2000):
        cap.capture(str(i), [i], [i])
    assert cap.close()
    # Binomial(2000, 0.1): mean 200, sd ~13.4; ±60 is ~4.5 sd.
    assert 140 <= cap.captured <= 260
    assert cap.captured + cap.skipped == 2000
    assert len(read_lines(tmp_path)) == cap.captured


def test_sample_rate_zero_captures_nothing(tmp_path: Path) -> None:
    cap = DataCapture(tmp_path, sample_rate=0.0, max_file_mb=1)
    for i in range(100):
        cap.capture(str(i), i, i)
    assert cap.close()
    assert (cap.captured, cap.skipped) == (0, 100)
    assert list(tmp_path.glob("*.jsonl")) == []  # no empty files


def test_full_queue_drops_instead_of_blocking(tmp_path: Path) -> None:
    cap = DataCapture(tmp_path, sample_rate=1.0, max_file_mb=64, queue_size=20)
    with cap.write_lock:  # the writer stalls as if the disk hung
        cap.capture("first", 0, 0)
        wait_until(lambda: cap.pending == 0)  # the writer took it and waits for the lock
        for i in range(120):  # returns every time, although nothing can be written
            cap.capture(f"r{i}", i, i)
        assert cap.pending == 20
        assert cap.dropped == 100
        assert cap.captured == 0
    assert cap.close(timeout=10)
    assert cap.captured == 21 and cap.dropped == 100
    ids = [r["request_id"] for r in read_lines(tmp_path)]
    assert ids == ["first"] + [f"r{i}" for i in range(20)]


def test_capture_after_close_is_dropped_and_close_is_idempotent(tmp_path: Path) -> None:
    cap = DataCapture(tmp_path, sample_rate=1.0, max_file_mb=1)
    cap.capture("a", 1, 1)
    assert cap.close()
    cap.capture("b", 2, 2)
    assert cap.close()
    assert (cap.captured, cap.dropped) == (1, 1)
    assert [r["request_id"] for r in read_lines(tmp_path)] == ["a"]


def test_two_writers_in_one_folder_do_not_collide(tmp_path: Path) -> None:
    a = DataCapture(tmp_path, sample_rate=1.0, max_file_mb=64)
    b = DataCapture(tmp_path, sample_rate=1.0, max_file_mb=64)
    for i in range(50):
        a.capture(f"a{i}", i, i)
        b.capture(f"b{i}", i, i)
    assert a.close() and b.close()
    assert set(a.files).isdisjoint(b.files)
    assert len(read_lines(tmp_path)) == 100


@pytest.mark.parametrize("kwargs", [{"sample_rate": 1.5}, {"sample_rate": -0.1}, {"max_file_mb": 0}])
def test_bad_settings_are_refused(tmp_path: Path, kwargs: dict) -> None:
    settings = {"sample_rate": 1.0, "max_file_mb": 1.0, **kwargs}
    with pytest.raises(ValueError):
        DataCapture(tmp_path, **settings)


def read_parquet(folder: Path) -> list[dict]:
    import pyarrow.parquet as pq

    rows = []
    for path in sorted(folder.glob("capture-*.parquet")):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def test_parquet_capture_has_one_typed_row_per_request(tmp_path: Path) -> None:
    cap = DataCapture(tmp_path / "cap", file_format="parquet")
    n = 300
    for i in range(n):
        cap.capture(f"req-{i}", {"data": np.array([[i, i + 0.5]])}, {"result": [i * 2.0]})
    assert cap.close(timeout=10)
    assert (cap.captured, cap.dropped) == (n, 0)
    rows = read_parquet(tmp_path / "cap")
    assert [r["request_id"] for r in rows] == [f"req-{i}" for i in range(n)]
    assert orjson.loads(rows[7]["inputs"]) == {"data": [[7.0, 7.5]]}
    assert orjson.loads(rows[7]["outputs"]) == {"result": [14.0]}
    assert rows[0]["timestamp"].tzinfo is not None and rows[0]["timestamp"].year >= 2024
    assert all(p.suffix == ".parquet" for p in cap.files)


def test_parquet_files_rotate_and_each_one_is_complete(tmp_path: Path) -> None:
    cap = DataCapture(tmp_path / "cap", file_format="parquet", max_file_mb=0.01)
    for i in range(40):
        cap.capture(f"req-{i}", {"data": [[float(j) for j in range(300)]]}, {"result": [float(i)]})
        time.sleep(0.002)  # several batches, so several row groups and files
    assert cap.close(timeout=10)
    assert len(cap.files) > 1
    ids = [r["request_id"] for r in read_parquet(tmp_path / "cap")]
    assert sorted(ids, key=lambda s: int(s.split("-")[1])) == [f"req-{i}" for i in range(40)]


def test_unknown_capture_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="jsonl or parquet"):
        DataCapture(tmp_path / "cap", file_format="csv")
