"""Data capture of a real server process: with capture on and a sample rate of 1, every scored
request lands in the capture folder's JSONL files, under the caller's request id, with the inputs
it sent and the outputs it got, and everything is on disk once the server has stopped."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from bundles import make_bundle, serving

pytestmark = pytest.mark.integration

REQUESTS = 20


def payload_of(i: int) -> dict:
    return {"data": [[i + 0.5 * c for c in range(10)] for _ in range(1 + i % 2)]}


def read_records(folder: Path) -> list[dict]:
    """The JSONL records, or the Parquet rows in the same shape (inputs/outputs parsed)."""
    records = []
    for path in sorted(folder.glob("capture-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            records.append(json.loads(line))
    import pyarrow.parquet as pq

    for path in sorted(folder.glob("capture-*.parquet")):
        for row in pq.read_table(path).to_pylist():
            row.update(inputs=json.loads(row["inputs"]), outputs=json.loads(row["outputs"]))
            records.append({**row, "timestamp": row["timestamp"].isoformat()})
    return records


@pytest.fixture(
    scope="module",
    params=[(False, "jsonl"), (True, "jsonl"), (False, "parquet")],
    ids=["direct", "batched", "parquet"],
)
def captured(request, tmp_path_factory):
    """Send 20 requests to a server with capture on, stop it, return (sent, answers, records)."""
    batching, file_format = request.param
    root = tmp_path_factory.mktemp(f"capture-{file_format}")
    bundle, model = make_bundle(root / "bundle")
    settings: dict = {"auth": False, "capture": {"enabled": True, "sample_rate": 1.0, "format": file_format}}
    if batching:
        settings["batching"] = {"max_batch_size": 16, "max_latency_ms": 5}
    capture_dir = root / "captured"
    sent: dict[str, dict] = {}
    answers: dict[str, dict] = {}
    # Leaving the block stops the server, which drains the capture queue on shutdown.
    with serving(bundle, root, settings, "capture-1", ["--capture-dir", str(capture_dir)]) as proc:
        with httpx.Client(timeout=10, trust_env=False) as client:
            # Probes, metrics and refused requests are not captured.
            assert client.get(f"{proc.url}/").status_code == 200
            assert client.get(f"{proc.url}/metrics").status_code == 200
            bad = client.post(f"{proc.url}/score", json={"data": [[1, 2]]}, headers={"x-request-id": "bad-1"})
            assert bad.status_code == 422
            for i in range(REQUESTS):
                request_id = f"cap-{i:02d}-{'b' if batching else 'd'}"
                payload = payload_of(i)
                r = client.post(f"{proc.url}/score", json=payload, headers={"x-request-id": request_id})
                assert r.status_code == 200, r.text
                assert r.headers["x-request-id"] == request_id
                expected = model.predict(np.array(payload["data"], dtype=float)).tolist()
                assert r.json()["result"] == pytest.approx(expected)
                sent[request_id] = payload
                answers[request_id] = r.json()
    return sent, answers, read_records(capture_dir), capture_dir, proc.pid


def test_capture_holds_exactly_the_scored_requests(captured):
    sent, _, records, capture_dir, pid = captured
    assert sorted(r["request_id"] for r in records) == sorted(sent)
    files = list(capture_dir.glob("capture-*.jsonl")) + list(capture_dir.glob("capture-*.parquet"))
    assert files and all(f.stem.endswith(f"-{pid}") for f in files)
    assert {f.suffix for f in files} == {".parquet" if "parquet" in capture_dir.parent.name else ".jsonl"}
    for record in records:
        assert set(record) == {"timestamp", "request_id", "inputs", "outputs"}
        assert record["timestamp"].endswith("+00:00")
    assert [r["timestamp"] for r in records] == sorted(r["timestamp"] for r in records)


def _as_json(value):
    # The captured inputs may be the request body as text: compare what it says.
    return json.loads(value) if isinstance(value, str) else value


def test_captured_inputs_and_outputs_are_what_was_sent_and_returned(captured):
    sent, answers, records, _, _ = captured
    by_id = {r["request_id"]: r for r in records}
    for request_id, payload in sent.items():
        record = by_id[request_id]
        assert _as_json(record["inputs"]) == payload
        assert record["outputs"] == answers[request_id]


def test_captured_inputs_are_json_objects_not_body_text(captured):
    """A capture record's inputs are the request's JSON, the same with and without batching."""
    sent, _, records, _, _ = captured
    by_id = {r["request_id"]: r for r in records}
    for request_id, payload in sent.items():
        assert by_id[request_id]["inputs"] == payload
